"""The contract tests run against the real services: the orchestrator, the board API and an agent runner
as processes, on a NATS server and a database of their own (tests/fixtures/stack.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wf_cli.embedded import EmbeddedPostgres

from tests.fixtures.stack import LiveStack


@pytest.fixture(scope="package")
def stack(pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    # The runner serves `testing` only, which nothing here reaches: it makes /health whole (200)
    # without ever calling a model.
    with LiveStack(tmp_path_factory.mktemp("stack"), pg_server, runner_stages=("testing",)) as live:
        yield live
