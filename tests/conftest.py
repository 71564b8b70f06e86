"""Fixtures shared by the whole suite: real NATS and PostgreSQL servers (tests/fixtures/servers.py) and
the real orchestrator and board API as processes (tests/fixtures/stack.py)."""

from __future__ import annotations

import signal

import pytest

pytest_plugins = ["tests.fixtures.servers", "tests.fixtures.stack"]


def pytest_configure(config: pytest.Config) -> None:
    """Tests press Ctrl-C (SIGINT) on the `wf` processes they start. A test run started in the
    background of a non-interactive shell (`nohup make test &`, as a CI runner may) has SIGINT ignored,
    and every process it starts would inherit that and ignore the Ctrl-C (as a background job should):
    give the suite, and so its children, Python's default handler back."""
    del config
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
