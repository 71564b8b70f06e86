"""Tracker webhooks in: POST /hooks/<target>. The signature is checked over the raw body in constant
time (Asana X-Hook-Signature after its X-Hook-Secret handshake, Jira X-Hub-Signature, GitHub
X-Hub-Signature-256, Linear Linear-Signature plus a webhookTimestamp window). A good delivery only wakes
the target's poller, which reads the current state: duplicated or reordered deliveries change nothing.
Bad signatures, stale timestamps and oversized bodies are refused and counted."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wf_sync_bridge import store

if TYPE_CHECKING:
    from wf_sync_bridge.app import SyncBridge
    from wf_sync_bridge.syncer import TargetSync

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
LINEAR_WINDOW_SECONDS = 60


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(expected_hex: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected_hex.encode(), given.strip().lower().encode())


class WebhookServer:
    def __init__(self, bridge: SyncBridge, host: str, port: int) -> None:
        self.bridge = bridge
        app = Starlette(routes=[Route("/hooks/{target}", self.receive, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises why it could not bind
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _reject(self, t: TargetSync | None, status: int, why: str) -> Response:
        if t is not None and self.bridge.db is not None:
            async with self.bridge.db.begin() as conn:
                await store.count(conn, t.name, "webhooks_rejected")
        log.warning("webhook for %s refused: %s", t.name if t else "?", why)
        return JSONResponse({"error": why}, status_code=status)

    async def receive(self, request: Request) -> Response:
        t = self.bridge.target(request.path_params["target"])
        if t is None:
            return JSONResponse({"error": "no such sync target"}, status_code=404)
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return await self._reject(t, 413, "body too large")
        body = await request.body()
        if len(body) > MAX_BODY:
            return await self._reject(t, 413, "body too large")
        if self.bridge.db is None:
            return JSONResponse({"error": "the sync bridge is still starting"}, status_code=503)
        adapter = t.target.adapter
        delivery: str | None = None
        if adapter == "asana":
            handshake = request.headers.get("x-hook-secret")
            if handshake:
                async with self.bridge.db.begin() as conn:
                    known = await store.cursor(conn, t.name, "hook_secret")
                    if known is not None:
                        return await self._reject(t, 409, "a webhook is already established for this target")
                    await store.set_cursor(conn, t.name, "hook_secret", handshake)
                return Response(status_code=200, headers={"X-Hook-Secret": handshake})
            async with self.bridge.db.connect() as conn:
                secret = await store.cursor(conn, t.name, "hook_secret") or t.target.webhook_secret
            if not secret or not signature_ok(
                hmac_hex(secret, body), request.headers.get("x-hook-signature")
            ):
                return await self._reject(t, 401, "bad X-Hook-Signature")
            delivery = hashlib.sha256(body).hexdigest()
        else:
            secret = t.target.webhook_secret
            if not secret:
                return await self._reject(t, 401, "no webhook_secret configured for this target")
            if adapter == "jira":
                given = request.headers.get("x-hub-signature", "").removeprefix("sha256=")
                delivery = request.headers.get("x-atlassian-webhook-identifier")
            elif adapter == "github":
                given = request.headers.get("x-hub-signature-256", "").removeprefix("sha256=")
                delivery = request.headers.get("x-github-delivery")
            else:
                given = request.headers.get("linear-signature", "")
                delivery = request.headers.get("linear-delivery")
            if not signature_ok(hmac_hex(secret, body), given):
                return await self._reject(t, 401, "bad signature")
            if adapter == "linear":
                try:
                    stamp = float(json.loads(body).get("webhookTimestamp", 0)) / 1000
                except (ValueError, AttributeError):
                    stamp = 0
                if abs(time.time() - stamp) > LINEAR_WINDOW_SECONDS:
                    return await self._reject(t, 401, "webhookTimestamp outside the allowed window (replay?)")
            delivery = delivery or hashlib.sha256(body).hexdigest()
        async with self.bridge.db.begin() as conn:
            duplicate = await store.seen(conn, f"hook:{t.name}", delivery)
        if not duplicate:
            t.poll_now.set()
        return JSONResponse({"ok": True, "duplicate": duplicate})
