"""Board API fixtures: the app against a real NATS, a real PostgreSQL and the real orchestrator.

`orchestrator` runs the real one in this process (`start_orchestrator` starts it when the test
says); `commands` records what reached it on wf.cmd.* (a plain subscription beside the
orchestrator's queue group). Rows the board only reads may be inserted straight into the test
database (tests/board/rows.py); what a command acts on is made through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from starlette.types import Receive, Scope, Send
from wf_board_api.app import create_app
from wf_board_api.settings import BoardSettings
from wf_cli.embedded import NatsServer, free_port
from wf_common import bus
from wf_common.commands import COMMAND_ADAPTER, Command
from wf_common.subjects import COMMANDS_PREFIX
from wf_orchestrator.app import Orchestrator
from wf_orchestrator.settings import OrchestratorSettings

from tests.orchestrator.conftest import database_url, migrated_template

# Fixtures: a database of each test alone, copied from the template at the newest migration.
__all__ = ["database_url", "migrated_template"]

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The board API refuses every /api request without its token; tests send it as the CLI does.
API_TOKEN = f"test-api-token-{secrets.token_hex(8)}"
AUTH_HEADERS = {"Authorization": f"Bearer {API_TOKEN}"}
# A Host the board answers to (it refuses names that are not its own).
BOARD_URL = "http://127.0.0.1:8000"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncConnection]:
    """A writable connection for the test to put rows in (autocommit: the app sees them at once)."""
    engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        yield conn
    await engine.dispose()


@pytest.fixture
def settings(nats_server: NatsServer, database_url: str) -> BoardSettings:
    return BoardSettings(
        config=None,
        nats_url=nats_server.url,
        database_url=database_url,
        api_token=API_TOKEN,
        board_command_timeout=2.0,
        board_keepalive_seconds=15.0,
    )


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    """The test's own NATS connection: to publish events, write KV entries and play the orchestrator."""
    conn = await nats.connect(nats_server.url)
    yield conn
    await conn.close()


@pytest.fixture
async def js(nc: NATS, settings: BoardSettings) -> JetStreamContext:
    context = nc.jetstream()
    workflow = settings.workflow
    await bus.ensure_topology(context, workflow.bus, workflow.pipeline.agent_stages)
    return context


@contextlib.asynccontextmanager
async def lifespan_app(app: FastAPI) -> AsyncIterator[ASGIApp]:
    """Run the app's lifespan and hand each request its state, as uvicorn does (httpx's ASGI
    transport does neither)."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        yield with_state


@pytest.fixture
async def client(settings: BoardSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with lifespan_app(create_app(settings)) as asgi:
        transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BOARD_URL, headers=AUTH_HEADERS) as http:
            yield http


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run `app` under a real uvicorn on a free port: real sockets, real streaming, real disconnects."""
    port = free_port("127.0.0.1")
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def live_url(settings: BoardSettings) -> AsyncIterator[str]:
    async with serve(create_app(settings)) as url:
        yield url


class CommandTap:
    """What reached the orchestrator: every command on wf.cmd.>, seen by a plain (not queue-group)
    subscription beside the real orchestrator's, so the test reads the wire without answering."""

    def __init__(self) -> None:
        self.received: list[Command] = []

    async def start(self, nc: NATS) -> CommandTap:
        async def seen(msg: Msg) -> None:
            self.received.append(COMMAND_ADAPTER.validate_json(msg.data))

        await nc.subscribe(f"{COMMANDS_PREFIX}.>", cb=seen)
        await nc.flush()
        return self

    def last(self) -> Command:
        assert self.received, "no command reached the orchestrator"
        return self.received[-1]

    def sent(self) -> list[Command]:
        """The commands the board sent, without its own /health pings."""
        return [c for c in self.received if c.type != "ping"]


@pytest.fixture
async def commands(nc: NATS) -> CommandTap:
    return await CommandTap().start(nc)


StartOrchestrator = Callable[[], Awaitable[Orchestrator]]


@pytest.fixture
async def start_orchestrator(
    nats_server: NatsServer, database_url: str, settings: BoardSettings
) -> AsyncIterator[StartOrchestrator]:
    """Starts the real orchestrator in this process, on the test's NATS and database."""
    running: list[Orchestrator] = []

    async def start() -> Orchestrator:
        orch = Orchestrator(
            OrchestratorSettings(
                config=None, nats_url=nats_server.url, database_url=database_url, migrate_on_start=False
            ),
            workflow=settings.workflow,
        )
        running.append(orch)
        await orch.start()
        return orch

    yield start
    for orch in running:
        await orch.stop()


@pytest.fixture
async def orchestrator(start_orchestrator: StartOrchestrator) -> Orchestrator:
    """The real orchestrator, answering the board's commands."""
    return await start_orchestrator()


async def new_project(client: httpx.AsyncClient, workspace: Path, slug: str = "listsnap") -> dict[str, Any]:
    """A project made through the board API, as a user does (the orchestrator makes the workspace)."""
    response = await client.post("/api/projects", json={"slug": slug, "workspace": str(workspace)})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data
