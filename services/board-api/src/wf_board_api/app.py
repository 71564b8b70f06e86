"""The FastAPI application: `create_app(settings)`.

The lifespan opens what every request shares (NATS, JetStream, the database engine) and yields it
as typed state (`AppState`), which handlers get through the dependencies in `state.py`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import TypedDict

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from wf_common import bus

from wf_board_api import exception_handlers, openapi, web
from wf_board_api.attachments.endpoints import router as attachments_router
from wf_board_api.auth import CSRF_HEADER, AuthMiddleware, AuthPolicy
from wf_board_api.board.endpoints import router as board_router
from wf_board_api.branches.endpoints import router as branches_router
from wf_board_api.bugs.endpoints import router as bugs_router
from wf_board_api.control.endpoints import router as control_router
from wf_board_api.db import make_engine
from wf_board_api.diff.endpoints import router as diff_router
from wf_board_api.events.endpoints import router as events_router
from wf_board_api.events.hub import EventHub
from wf_board_api.gateway import CommandGateway
from wf_board_api.health.endpoints import router as health_router
from wf_board_api.hooks.endpoints import router as hooks_router
from wf_board_api.mcp_endpoint import McpEndpoint
from wf_board_api.middleware import SecurityHeaders
from wf_board_api.output.endpoints import router as output_router
from wf_board_api.projects.endpoints import router as projects_router
from wf_board_api.schemas import API_RESPONSES, GUARD_RESPONSES
from wf_board_api.settings import BoardSettings
from wf_board_api.state import AppState
from wf_board_api.stats.endpoints import router as stats_router
from wf_board_api.sync.endpoints import router as sync_router
from wf_board_api.tasks.endpoints import router as tasks_router

log = logging.getLogger(__name__)


class LifespanState(TypedDict):
    app: AppState


def create_app(settings: BoardSettings) -> FastAPI:
    # Resolve now so a missing NATS/database URL is reported at start, naming the setting to fix.
    nats_url = settings.resolved_nats_url()
    database_url = settings.resolved_database_url()
    auth = AuthPolicy.build(
        settings.resolved_api_token(), settings.host(), settings.allowed_hosts(), settings.board_cors_origins
    )
    # Created here, not in the lifespan, so the server's signal handler (__main__) can hold it first.
    stopping = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[LifespanState]:
        nc = await bus.connect(nats_url, name="board-api")
        # Its readers' consumers on WF_EVENTS are made under names of their own (the login allows no other).
        js = bus.NamedThrowawaysJetStream(nc, "board")
        workflow = settings.workflow
        try:
            # Idempotent, and every service may do it: the board can start before the orchestrator.
            await bus.ensure_topology(js, workflow.bus, workflow.pipeline.agent_stages, update_existing=False)
        except Exception as err:  # noqa: BLE001 - the board still serves reads; /health says what's wrong
            log.warning("could not declare the NATS streams and buckets: %s", err)
        engine = make_engine(database_url)
        state = AppState(
            settings=settings,
            nc=nc,
            js=js,
            engine=engine,
            gateway=CommandGateway(nc, settings.board_command_timeout),
            hub=EventHub(js),
            stopping=stopping,
        )
        try:
            async with mcp.running(state):
                yield {"app": state}
        finally:
            state.stopping.set()
            await state.hub.close()
            with contextlib.suppress(Exception):
                await nc.close()
            await engine.dispose()

    app = FastAPI(
        title="Workflow Hub board API",
        version="0.1.0",
        summary="Read the board, send commands to the orchestrator, follow events live.",
        lifespan=lifespan,
        docs_url=None,  # openapi.install serves /docs with local assets; ReDoc would need a CDN
        redoc_url=None,
    )
    app.state.stopping = stopping
    mcp = McpEndpoint(app, settings.resolved_api_token())
    # The last added runs first: security headers on every answer, CORS preflights answered before
    # authentication (they carry no credentials), then the Host, token and CSRF checks.
    app.add_middleware(AuthMiddleware, policy=auth)
    if settings.board_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.board_cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH"],
            allow_headers=["Content-Type", "X-WF-Client", "Last-Event-ID", "Authorization", CSRF_HEADER],
        )
    app.add_middleware(SecurityHeaders)
    exception_handlers.register(app)
    pipeline = settings.workflow.pipeline
    openapi.install(app, settings.stages(), [s.name for s in pipeline.stages[1:] if s.agent])
    app.include_router(health_router, responses=GUARD_RESPONSES)
    for router in (
        projects_router,
        tasks_router,
        board_router,
        bugs_router,
        attachments_router,
        control_router,
        branches_router,
        events_router,
        stats_router,
        sync_router,
        hooks_router,
        diff_router,
        output_router,
    ):
        # Every /api operation declares the errors every request can meet (auth, validation, 503).
        app.include_router(router, responses=API_RESPONSES)
    web.install(app)
    mcp.install()
    return app
