"""A stand-in for the board API over a real socket, for testing the `wf` client commands.

It keeps a little state (projects, tasks, bugs, paused) and answers the routes the CLI uses with
the documented shapes, records every request, and lets a test override any route:

    with FakeBoard() as board:
        board.add_task("listsnap", "T-001", stage="pm", state="awaiting_approval")
        board.override("POST", "/api/projects/listsnap/tasks/T-001/approve", 409, error("conflict", "..."))
        run_wf("--url", board.url, "approve", "T-001")
        assert board.requests[-1].body == {}
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def error(code: str, message: str) -> dict[str, str]:
    return {"error": code, "message": message}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeBoard:
    projects: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    bugs: list[dict[str, Any]] = field(default_factory=list)
    details: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    paused: bool = False
    # SSE: each connection gets these (id, type, data) events after Last-Event-ID, then the stream ends
    # (or stays open when `hold_events` is set).
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    hold_events: bool = False
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._overrides: dict[tuple[str, str], tuple[int, Any]] = {}
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PATCH"])])

    # ------------------------------------------------------------------ test API

    def add_project(self, slug: str, **kw: Any) -> dict[str, Any]:
        p = {
            "slug": slug,
            "name": kw.get("name", slug),
            "workspace": kw.get("workspace", f"/work/{slug}"),
            "test_command": kw.get("test_command", "python -m pytest"),
        }
        self.projects.append(p)
        return p

    def add_task(self, project: str, key: str, **kw: Any) -> dict[str, Any]:
        if not any(p["slug"] == project for p in self.projects):
            self.add_project(project)
        t = {
            "project": project,
            "key": key,
            "title": kw.pop("title", f"task {key}"),
            "description": "",
            "acceptance_criteria": [],
            "stage": "dev",
            "state": "queued",
            "priority": 5,
            "blocked_by": [],
            "parent": None,
            "rework_count": 0,
            "created_by": "agent:pm",
            "status_reason": None,
            "updated_at": "2026-01-02T03:04:05+00:00",
        }
        t.update(kw)
        self.tasks.append(t)
        return t

    def override(self, method: str, path: str, status: int, body: Any) -> None:
        self._overrides[(method, path)] = (status, body)

    def last(self, method: str | None = None) -> Recorded:
        matching = [r for r in self.requests if method is None or r.method == method]
        return matching[-1]

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeBoard:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            self._app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = server = uvicorn.Server(config)

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(server.serve(sockets=[sock]))
            finally:
                sock.close()
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-board", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("FakeBoard could not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        path = request.url.path
        self.requests.append(
            Recorded(request.method, path, dict(request.query_params), dict(request.headers), body)
        )
        if (request.method, path) in self._overrides:
            status, answer = self._overrides[(request.method, path)]
            return JSONResponse(answer, status_code=status)
        if path == "/api/events":
            return self._sse(request)
        status, answer = self._route(
            request.method, path.strip("/").split("/"), dict(request.query_params), body
        )
        return JSONResponse(answer, status_code=status)

    def _route(self, method: str, parts: list[str], q: dict[str, str], body: Any) -> tuple[int, Any]:
        match (method, parts):
            case ("GET", ["api", "projects"]):
                return 200, self.projects
            case ("POST", ["api", "projects"]):
                p = self.add_project(body["slug"], **{k: v for k, v in body.items() if k != "slug"})
                return 201, p
            case ("POST", ["api", "projects", slug, "ideas"]):
                if not self._project(slug):
                    return 404, error("not_found", f"no project {slug!r}")
                key = f"T-{len(self.tasks) + 1:03d}"
                t = self.add_task(slug, key, title=body["text"][:50], stage="backlog", state="queued")
                return 201, t
            case ("GET", ["api", "tasks"]):
                rows = [
                    t
                    for t in self.tasks
                    if all(
                        not q.get(f) or str(t.get(f)) == q[f] for f in ("project", "stage", "state", "key")
                    )
                ]
                return 200, rows
            case ("GET", ["api", "control"]):
                return 200, {"paused": self.paused}
            case ("POST", ["api", "control", action]) if action in ("pause", "resume"):
                self.paused = action == "pause"
                return 200, {"paused": self.paused}
            case ("GET", ["api", "projects", slug, "tasks", key]):
                found = self._task(slug, key)
                if found is None:
                    return 404, error("not_found", f"no task {key} in project {slug}")
                # As the board API answers: the task's own fields, then its history.
                empty: dict[str, Any] = {"handoffs": [], "executions": [], "bugs": [], "feedback": [],
                                         "attachments": [], "children": [], "cost": {}}  # fmt: skip
                return 200, self.details.get((slug, key), {**found, **empty})
            case ("PATCH", ["api", "projects", slug, "tasks", key]):
                found = self._task(slug, key)
                if found is None:
                    return 404, error("not_found", f"no task {key} in project {slug}")
                found.update(body)
                return 200, found
            case ("POST", ["api", "projects", slug, "tasks", key, action]):
                found = self._task(slug, key)
                if found is None:
                    return 404, error("not_found", f"no task {key} in project {slug}")
                if action in ("approve", "reject") and found["state"] != "awaiting_approval":
                    state = found["state"]
                    return 409, error("conflict", f"task {key} is not waiting for approval (it is {state})")
                if action == "approve":
                    found.update(stage="dev", state="queued")
                return 200, {"task": found}
            case ("GET", ["api", "bugs"]):
                rows = [
                    b
                    for b in self.bugs
                    if (not q.get("project") or b["project"] == q["project"])
                    and (q.get("include_killed") == "true" or b["status"] != "killed")
                ]
                return 200, rows
            case ("POST", ["api", "projects", slug, "bugs", key, "kill"]):
                for b in self.bugs:
                    if b["project"] == slug and b["key"] == key:
                        b["status"] = "killed"
                        return 200, b
                return 404, error("not_found", f"no bug {key} in project {slug}")
        return 404, {"detail": "Not Found"}

    def _project(self, slug: str) -> dict[str, Any] | None:
        return next((p for p in self.projects if p["slug"] == slug), None)

    def _task(self, slug: str, key: str) -> dict[str, Any] | None:
        return next((t for t in self.tasks if t["project"] == slug and t["key"] == key), None)

    def _sse(self, request: Request) -> StreamingResponse:
        after = int(request.headers.get("last-event-id") or 0)
        events = [e for e in self.events if e[0] > after]

        async def stream() -> AsyncIterator[bytes]:
            yield b": hello\n\n"
            for seq, kind, data in events:
                yield f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()
            # Polls flags the test thread sets; an asyncio.Event would belong to this loop only.
            while self.hold_events and not (self._server and self._server.should_exit):  # noqa: ASYNC110
                await asyncio.sleep(0.05)

        return StreamingResponse(stream(), media_type="text/event-stream")
