"""Fixtures of the orchestrator tests: a migrated database per test (copied from a template migrated
once per session) and an orchestrator running in-process against a fresh NATS server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from wf_cli.embedded import EmbeddedPostgres, NatsServer
from wf_common.config import WorkflowConfig, parse_config
from wf_orchestrator.migrations import migrate

from tests.orchestrator.hub import Hub

TEMPLATE = "wf_orchestrator_template"


@pytest.fixture(scope="session")
def migrated_template(pg_server: EmbeddedPostgres) -> str:
    pg_server.drop_database(TEMPLATE)
    pg_server.create_database(TEMPLATE)
    asyncio.run(migrate(pg_server.async_url(TEMPLATE)))
    return TEMPLATE


@pytest.fixture
def database_url(pg_server: EmbeddedPostgres, migrated_template: str) -> Iterator[str]:
    """A database at the newest migration, of this test alone."""
    name = f"orch_{uuid.uuid4().hex[:12]}"
    pg_server.create_database(name, template=migrated_template)
    try:
        yield pg_server.async_url(name)
    finally:
        pg_server.drop_database(name)


def config(**sections: Any) -> WorkflowConfig:
    """The default pipeline, with quick redelivery, and the given overrides (config.yaml sections)."""
    # One job per project at a time (the default before worktrees): these tests follow one task's jobs.
    data: dict[str, Any] = {
        "bus": {"ack_wait_seconds": 2, "max_deliver": 3},
        "pipeline": {"max_parallel_per_project": 1},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return parse_config(data)


@pytest.fixture
def workflow() -> WorkflowConfig:
    return config()


@pytest.fixture
async def make_hub(nats_server: NatsServer, database_url: str) -> AsyncIterator[Callable[..., Any]]:
    hubs: list[Hub] = []

    async def make(workflow: WorkflowConfig | None = None, **settings: Any) -> Hub:
        hub = Hub(nats_server.url, database_url, workflow or config(), **settings)
        await hub.start()
        hubs.append(hub)
        return hub

    yield make
    for h in hubs:
        await h.close()


@pytest.fixture
async def hub(make_hub: Callable[..., Any], workflow: WorkflowConfig, tmp_path: Path) -> Hub:
    """An orchestrator with a project `demo` (workspace under tmp_path)."""
    h: Hub = await make_hub(workflow)
    await h.project("demo", tmp_path / "demo")
    return h
