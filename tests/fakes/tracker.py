"""What the tracker fakes (asana.py, jira.py, github.py, linear.py) share: a uvicorn server on its own
thread and a real socket, a request log, injectable faults, and webhook delivery.

Faults are matched in order against "METHOD /path" (a regex) and used up:

    fake.fail("POST /tasks", status=429, retry_after=1)   # rate limited once
    fake.fail("PUT /tasks/.*", status=500, times=2)       # two server errors
    fake.fail("POST /tasks", stall_after=30)              # does the work, then answers too late

State is shared between the test thread (control methods) and the server thread (handlers) under
`self.lock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Fault:
    pattern: re.Pattern[str]
    status: int = 500
    retry_after: float | None = None
    stall_after: float | None = None  # handle the request, then wait this long before answering
    times: int = 1
    body: Any = None


@dataclass
class Logged:
    method: str
    path: str
    query: str
    body: Any
    status: int = 0


class FakeTracker:
    """Base of the fakes. Subclasses define `routes()` and `error_body(status, message)`."""

    name = "tracker"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[Logged] = []
        self.faults: list[Fault] = []
        self.url = ""
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.webhooks_sent: list[dict[str, Any]] = []

    # -- to implement ---------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        return {"errors": [{"message": message}]}

    # -- control (test thread) -------------------------------------------------------------------

    def fail(
        self,
        pattern: str,
        *,
        status: int = 500,
        retry_after: float | None = None,
        stall_after: float | None = None,
        times: int = 1,
        body: Any = None,
    ) -> None:
        with self.lock:
            self.faults.append(Fault(re.compile(pattern), status, retry_after, stall_after, times, body))

    def calls(self, pattern: str) -> list[Logged]:
        """Logged requests whose "METHOD /path" matches `pattern` from the start."""
        rx = re.compile(pattern)
        with self.lock:
            return [r for r in self.requests if rx.match(f"{r.method} {r.path}")]

    def writes(self) -> list[Logged]:
        with self.lock:
            return [
                r for r in self.requests if r.method in ("POST", "PUT", "PATCH", "DELETE") and r.status < 400
            ]

    # -- fault and log wrapper (server thread) ---------------------------------------------------

    def _take_fault(self, key: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.pattern.match(key):
                    f.times -= 1
                    if f.times <= 0:
                        self.faults.remove(f)
                    return f
        return None

    def wrap(self, handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            entry = Logged(request.method, request.url.path, request.url.query, body)
            with self.lock:
                self.requests.append(entry)
            fault = self._take_fault(f"{request.method} {request.url.path}")
            if fault is not None and fault.stall_after is None:
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                entry.status = fault.status
                content = (
                    fault.body if fault.body is not None else self.error_body(fault.status, "injected fault")
                )
                return JSONResponse(content, status_code=fault.status, headers=headers)
            response = await handler(request)
            entry.status = response.status_code
            if fault is not None and fault.stall_after is not None:
                await asyncio.sleep(fault.stall_after)  # the work is done; the answer comes too late
            return response

        return run

    def app(self) -> Starlette:
        routes = [Route(r.path, self.wrap(r.endpoint), methods=list(r.methods or [])) for r in self.routes()]
        return Starlette(routes=routes)

    # -- webhooks ----------------------------------------------------------------------------------

    def sign(self, body: bytes) -> dict[str, str]:
        return {}

    def deliver(self, payload: Any, headers: dict[str, str] | None = None) -> httpx.Response | None:
        """POST a webhook to the subscribed URL, signed as the service signs it (test thread)."""
        if not self.webhook_url:
            return None
        body = json.dumps(payload).encode()
        h = {"Content-Type": "application/json", **self.sign(body), **(headers or {})}
        with self.lock:
            self.webhooks_sent.append({"payload": payload, "headers": h})
        return httpx.post(self.webhook_url, content=body, headers=h, timeout=10)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> FakeTracker:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            self.app(), log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                assert self._server is not None
                loop.run_until_complete(self._server.serve(sockets=[sock]))
            finally:
                sock.close()
                loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"fake {self.name} could not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._thread is None or self._server is None:
            return
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeTracker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    with contextlib.suppress(ValueError):
        return json.loads(raw)
    return None
