"""Fixtures of the sync bridge tests: the four tracker fakes on real sockets, a database migrated for
both the orchestrator and the bridge, an in-process orchestrator (tests.orchestrator.hub) and the bridge
itself, configured with one target per fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from wf_cli.embedded import EmbeddedPostgres, NatsServer
from wf_common.config import FINAL_STAGE, WorkflowConfig, parse_config
from wf_orchestrator.migrations import migrate as migrate_orchestrator
from wf_sync_bridge.app import SyncBridge
from wf_sync_bridge.migrations import migrate as migrate_sync
from wf_sync_bridge.settings import SyncBridgeSettings

from tests.fakes.asana import FakeAsana
from tests.fakes.github import FakeGithub
from tests.fakes.jira import FakeJira
from tests.fakes.linear import FakeLinear
from tests.orchestrator.conftest import database_url
from tests.orchestrator.hub import Hub

# A fixture: a database of each test alone, copied from `migrated_template` below.
__all__ = ["database_url"]

TEMPLATE = "wf_sync_template"
STAGES = ["backlog", "pm", "dev", "qa", "sec", "docs", "deploy", "testing", "done"]
JIRA_STATUS = {s: s.capitalize() if s != "pm" else "PM" for s in STAGES}


@pytest.fixture(scope="session")
def migrated_template(pg_server: EmbeddedPostgres) -> str:
    """What `database_url` (the orchestrator tests' fixture) copies here: the orchestrator's
    migrations and the bridge's own."""
    pg_server.drop_database(TEMPLATE)
    pg_server.create_database(TEMPLATE)

    async def both() -> None:
        await migrate_orchestrator(pg_server.async_url(TEMPLATE))
        await migrate_sync(pg_server.async_url(TEMPLATE))

    asyncio.run(both())
    return TEMPLATE


class Fakes:
    def __init__(self) -> None:
        self.asana = FakeAsana(sections=STAGES, page_size=2)
        self.jira = FakeJira(statuses=[JIRA_STATUS[s] for s in STAGES], page_size=2)
        self.github = FakeGithub()
        self.linear = FakeLinear(states=STAGES, page_size=2)
        self.all = [self.asana, self.jira, self.github, self.linear]

    def targets(self, **common: Any) -> list[dict[str, Any]]:
        base = {"poll_interval_seconds": 0.2, "poll_overlap_seconds": 120, "timeout_seconds": 3, **common}
        return [
            {
                "adapter": "asana",
                "access_token": self.asana.token,
                "project_gid": self.asana.project_gid,
                "base_url": self.asana.url,
                **base,
            },
            {
                "adapter": "jira",
                "url": self.jira.url,
                "email": self.jira.email,
                "api_token": self.jira.token,
                "project_key": self.jira.project_key,
                "stages": JIRA_STATUS,
                **base,
            },
            {
                "adapter": "github",
                "owner": self.github.owner,
                "repo": self.github.repo,
                "token": self.github.token,
                "base_url": self.github.url,
                **base,
            },
            {
                "adapter": "linear",
                "team": self.linear.team_key,
                "key": self.linear.key,
                "base_url": self.linear.url,
                **base,
            },
        ]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    f = Fakes()
    for fake in f.all:
        fake.start()
    try:
        yield f
    finally:
        for fake in f.all:
            fake.stop()


def sync_config(targets: list[dict[str, Any]]) -> WorkflowConfig:
    return parse_config(
        {"bus": {"ack_wait_seconds": 2, "max_deliver": 3}, "task_backend": {"sync_to": targets}}
    )


@pytest.fixture
async def hub(nats_server: NatsServer, database_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    h = Hub(nats_server.url, database_url, sync_config([]))
    await h.start()
    await h.project("demo", tmp_path / "demo")
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def make_bridge(
    nats_server: NatsServer, database_url: str
) -> AsyncIterator[Callable[[list[dict[str, Any]]], Any]]:
    bridges: list[SyncBridge] = []

    async def make(targets: list[dict[str, Any]]) -> SyncBridge:
        settings = SyncBridgeSettings(
            nats_url=nats_server.url, database_url=database_url, migrate_on_start=False
        )
        b = SyncBridge(settings, workflow=sync_config(targets))
        try:
            await b.start()
        except BaseException:
            await b.stop()  # a start refused half-way still closes its tracker client, NATS and engine
            raise
        bridges.append(b)
        return b

    yield make
    for b in bridges:
        await b.stop()


__all__ = ["FINAL_STAGE", "JIRA_STATUS", "STAGES", "Fakes"]
