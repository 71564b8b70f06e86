"""Fixtures shared by the whole suite: real NATS and PostgreSQL servers (tests/fixtures/servers.py) and
the real orchestrator and board API as processes (tests/fixtures/stack.py)."""

pytest_plugins = ["tests.fixtures.servers", "tests.fixtures.stack"]
