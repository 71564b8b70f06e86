"""Fixtures shared by the whole suite: real NATS and PostgreSQL servers (tests/fixtures/servers.py)."""

pytest_plugins = ["tests.fixtures.servers"]
