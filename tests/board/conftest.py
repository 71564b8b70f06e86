"""Board API fixtures: the app against a real NATS and a real PostgreSQL, and a stand-in orchestrator.

The orchestrator is played by `FakeOrchestrator`, which answers wf.cmd.* over the real NATS socket
the way the real one does (request/reply, CommandReply). Rows are inserted straight into the test
database (tests/board/rows.py): the board API only reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
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
from wf_common.commands import COMMAND_ADAPTER, Command, CommandReply, ReplyError
from wf_common.db.tables import metadata
from wf_common.errors import CommandErrorCode
from wf_common.subjects import COMMANDS_PREFIX, COMMANDS_QUEUE

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The board API refuses every /api request without its token; tests send it as the CLI does.
API_TOKEN = f"test-api-token-{secrets.token_hex(8)}"
AUTH_HEADERS = {"Authorization": f"Bearer {API_TOKEN}"}
# A Host the board answers to (it refuses names that are not its own).
BOARD_URL = "http://127.0.0.1:8000"


@pytest.fixture
async def database_url(empty_database_url: str) -> str:
    """An empty database with the workflow schema (the orchestrator's migrations make the same)."""
    engine = create_async_engine(empty_database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await engine.dispose()
    return empty_database_url


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


class FakeOrchestrator:
    """Answers commands on wf.cmd.* like the orchestrator: records each, replies with a CommandReply.

    By default every command succeeds with data {"type": <command type>}; `reply_with` sets the
    reply for one command type, `fail_with` makes it an error with a code.
    """

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self.received: list[Command] = []
        self.raw: list[dict[str, Any]] = []
        self._replies: dict[str, CommandReply] = {}

    def reply_with(self, command_type: str, data: dict[str, Any]) -> None:
        self._replies[command_type] = CommandReply(ok=True, data=data)

    def fail_with(self, command_type: str, code: CommandErrorCode, message: str) -> None:
        self._replies[command_type] = CommandReply(ok=False, error=ReplyError(code=code, message=message))

    async def start(self) -> FakeOrchestrator:
        await self._nc.subscribe(f"{COMMANDS_PREFIX}.*", queue=COMMANDS_QUEUE, cb=self._answer)
        await self._nc.flush()
        return self

    async def _answer(self, msg: Msg) -> None:
        command = COMMAND_ADAPTER.validate_json(msg.data)
        self.received.append(command)
        self.raw.append(COMMAND_ADAPTER.dump_python(command, mode="json"))
        reply = self._replies.get(command.type, CommandReply(ok=True, data={"type": command.type}))
        await msg.respond(reply.model_dump_json().encode())

    def last(self) -> Command:
        assert self.received, "the orchestrator received no command"
        return self.received[-1]


@pytest.fixture
async def orchestrator(nc: NATS) -> FakeOrchestrator:
    return await FakeOrchestrator(nc).start()
