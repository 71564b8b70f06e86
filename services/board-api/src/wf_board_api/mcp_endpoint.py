"""`/mcp`: the board as a streamable-HTTP MCP server (wf_common.mcp_board).

Its tools call this same app in-process (an ASGI transport with the lifespan's state), with the
install's token as a Bearer header when there is one, so every rule and audit record of the API
applies; the actor is `mcp:<client name>`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from mcp.server.fastmcp import FastMCP
from starlette.types import Receive, Scope, Send
from wf_common.mcp_board import build_server

from wf_board_api.state import AppState


class McpEndpoint:
    def __init__(self, app: FastAPI, token: str) -> None:
        self._app = app
        self._token = token
        self._state: AppState | None = None
        self.server: FastMCP = build_server(self._client, streamable_path="/mcp")

    def _client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self._with_state),
            base_url="http://127.0.0.1",
            headers=headers,
            timeout=30,
        )

    async def _with_state(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = {"app": self._state}
        await self._app(scope, receive, send)

    def install(self) -> None:
        for route in self.server.streamable_http_app().routes:
            self._app.router.routes.append(route)

    @contextlib.asynccontextmanager
    async def running(self, state: AppState) -> AsyncIterator[None]:
        """Run the MCP session manager for the app's lifetime, in a task of its own: its task group
        must be entered and left by the same task, which the lifespan's caller does not promise."""
        self._state = state
        stop = asyncio.Event()
        started = asyncio.Event()

        async def serve() -> None:
            async with self.server.session_manager.run():
                started.set()
                await stop.wait()

        task = asyncio.create_task(serve(), name="mcp-session-manager")
        await asyncio.wait({task, asyncio.create_task(started.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises why it could not start
        try:
            yield
        finally:
            stop.set()
            await task
