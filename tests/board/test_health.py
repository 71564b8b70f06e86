"""/health says 200 only when NATS, the database, the orchestrator and a runner are all there."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from wf_board_api.app import create_app
from wf_board_api.settings import BoardSettings
from wf_cli.embedded import EmbeddedPostgres, free_port
from wf_common.commands import Ping
from wf_common.jobs import RunnerHeartbeat
from wf_common.subjects import RUNNERS_BUCKET

from tests.board.conftest import AUTH_HEADERS, BOARD_URL, CommandTap, StartOrchestrator, lifespan_app


async def test_health_is_503_until_orchestrator_and_runner_are_up(
    client: httpx.AsyncClient,
    js: JetStreamContext,
    nc: NATS,
    start_orchestrator: StartOrchestrator,
) -> None:
    response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["error"] == "unavailable"
    assert body["checks"]["nats"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["orchestrator"].startswith("the orchestrator is not answering")
    assert body["checks"]["runners"] == 0
    assert "orchestrator:" in body["message"]
    assert "runners:" in body["message"]

    await start_orchestrator()
    commands = await CommandTap().start(nc)  # only now: a listener on wf.cmd.> changes the first answer
    response = await client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["orchestrator"] == "ok"
    assert response.json()["message"] == (
        "not ready: runners: no heartbeat in wf_runners; is an agent runner running?"
    )
    assert isinstance(commands.last(), Ping)
    assert commands.last().actor == "board-api"

    kv = await js.key_value(RUNNERS_BUCKET)
    beat = RunnerHeartbeat(runner_id="runner-1", stages=["dev"], pid=os.getpid(), host="box")
    await kv.put("runner-1", beat.model_dump_json().encode())
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"nats": "ok", "database": "ok", "orchestrator": "ok", "runners": 1},
    }


@pytest.fixture
async def client_without_database(settings: BoardSettings) -> AsyncIterator[httpx.AsyncClient]:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port('127.0.0.1')}/workflow"
    app = create_app(settings.model_copy(update={"database_url": nowhere}))
    async with lifespan_app(app) as asgi:
        transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BOARD_URL, headers=AUTH_HEADERS) as http:
            yield http


async def test_database_down_is_503_not_500(
    client_without_database: httpx.AsyncClient, start_orchestrator: StartOrchestrator
) -> None:
    await start_orchestrator()  # on its own database: only the board's is unreachable
    response = await client_without_database.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] != "ok"
    assert "database:" in response.json()["message"]

    response = await client_without_database.get("/api/projects")
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert response.json()["message"].startswith("the database is not answering")


@pytest.fixture
async def client_before_migrations(
    settings: BoardSettings, pg_server: EmbeddedPostgres
) -> AsyncIterator[httpx.AsyncClient]:
    """The board on a database the orchestrator has not migrated yet (no tables)."""
    name = f"bare_{uuid.uuid4().hex[:12]}"
    pg_server.create_database(name)
    app = create_app(settings.model_copy(update={"database_url": pg_server.async_url(name)}))
    try:
        async with lifespan_app(app) as asgi:
            transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url=BOARD_URL, headers=AUTH_HEADERS
            ) as http:
                yield http
    finally:
        pg_server.drop_database(name)


async def test_database_without_tables_is_503_saying_so(client_before_migrations: httpx.AsyncClient) -> None:
    for path in ("/api/projects", "/api/tasks?key=T-001", "/api/board"):
        response = await client_before_migrations.get(path)
        assert response.status_code == 503, path
        assert response.json() == {
            "error": "unavailable",
            "message": "the database has no Workflow Hub tables yet; start the orchestrator once",
        }
