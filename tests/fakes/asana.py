"""A fake Asana (REST API 1.0) over a real socket: {"data": ...} envelopes and {"errors": [...]}
failures, numeric-string gids, ISO timestamps with milliseconds and Z, offset pagination with
`next_page`, sections with addTask, comment stories, html_notes validation, the events API with sync
tokens (412 with a fresh token when missing or expired), and webhooks with the X-Hook-Secret handshake
and X-Hook-Signature (HMAC-SHA256 of the body).

Control: human_update(gid, name=, html_notes=), human_move(gid, section), human_comment(gid, text),
human_delete(gid), expire_sync_tokens(), task(gid), tasks(), fail(...), calls(...).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.tracker import FakeTracker, json_body

_ALLOWED_TAGS = {
    "body",
    "h1",
    "h2",
    "ul",
    "ol",
    "li",
    "strong",
    "em",
    "u",
    "s",
    "code",
    "pre",
    "a",
    "blockquote",
    "hr",
}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _valid_html_notes(notes: str) -> bool:
    if not (notes.startswith("<body>") and notes.endswith("</body>")):
        return False
    return all(t.lower() in _ALLOWED_TAGS for t in re.findall(r"</?([a-zA-Z0-9]+)[^>]*>", notes))


def _plain(notes: str) -> str:
    return re.sub(r"<[^>]+>", "", notes)


class FakeAsana(FakeTracker):
    name = "asana"

    def __init__(
        self,
        *,
        token: str = "asana-token",  # noqa: S107 - the fake's test token
        sections: list[str] | None = None,
        page_size: int = 100,
    ) -> None:
        super().__init__()
        self.token = token
        self._ids = itertools.count(1_200_000_000_000_001)
        self.me = {
            "gid": self.gid(),
            "name": "Workflow Hub bot",
            "resource_type": "user",
            "email": "bot@example.com",
        }
        self.human = {
            "gid": self.gid(),
            "name": "Ada Human",
            "resource_type": "user",
            "email": "ada@example.com",
        }
        self.project_gid = self.gid()
        self.page_size = page_size
        self.sections: dict[str, dict[str, Any]] = {}
        for name in sections or ["Untitled section"]:
            s = {"gid": self.gid(), "name": name, "resource_type": "section"}
            self.sections[s["gid"]] = s
        self._tasks: dict[str, dict[str, Any]] = {}
        self.stories: dict[str, list[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.sync_tokens: dict[str, int] = {}
        self.hook_secret: str | None = None

    def gid(self) -> str:
        return str(next(self._ids))

    def error_body(self, status: int, message: str) -> Any:
        return {"errors": [{"message": message, "help": "For more information on API status codes..."}]}

    # -- control -----------------------------------------------------------------------------------

    def task(self, gid: str) -> dict[str, Any]:
        with self.lock:
            return dict(self._tasks[gid])

    def tasks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(t) for t in self._tasks.values() if not t.get("_deleted")]

    def section_of(self, gid: str) -> str:
        with self.lock:
            return str(self._tasks[gid]["memberships"][0]["section"]["name"])

    def comments(self, gid: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.stories.get(gid, []) if s["type"] == "comment"]

    def human_update(self, gid: str, **fields: Any) -> None:
        with self.lock:
            self._update(gid, fields, self.human)

    def human_move(self, gid: str, section: str) -> None:
        with self.lock:
            self._move(gid, self._section_named(section)["gid"], self.human)

    def human_comment(self, gid: str, text: str) -> None:
        with self.lock:
            self._comment(gid, text, self.human)

    def human_delete(self, gid: str) -> None:
        with self.lock:
            self._tasks[gid]["_deleted"] = True
            self._event(self.human, "deleted", {"gid": gid, "resource_type": "task"})

    def expire_sync_tokens(self) -> None:
        with self.lock:
            self.sync_tokens.clear()

    def sign(self, body: bytes) -> dict[str, str]:
        assert self.hook_secret is not None
        return {"X-Hook-Signature": hmac.new(self.hook_secret.encode(), body, hashlib.sha256).hexdigest()}

    # -- state changes (under the lock) --------------------------------------------------------------

    def _section_named(self, name: str) -> dict[str, Any]:
        return next(s for s in self.sections.values() if s["name"] == name)

    def _event(self, user: dict[str, Any], action: str, resource: dict[str, Any], parent: Any = None) -> None:
        self.events.append(
            {
                "user": {"gid": user["gid"], "resource_type": "user"},
                "created_at": now(),
                "type": resource["resource_type"],
                "action": action,
                "resource": resource,
                "parent": parent,
            }
        )

    def _update(self, gid: str, fields: dict[str, Any], user: dict[str, Any]) -> None:
        t = self._tasks[gid]
        for k in ("name", "html_notes", "completed"):
            if k in fields:
                t[k] = fields[k]
        if "html_notes" in fields:
            t["notes"] = _plain(fields["html_notes"])
        t["modified_at"] = now()
        self._event(user, "changed", {"gid": gid, "resource_type": "task"})

    def _move(self, gid: str, section_gid: str, user: dict[str, Any]) -> None:
        t = self._tasks[gid]
        s = self.sections[section_gid]
        t["memberships"] = [
            {
                "project": {"gid": self.project_gid, "resource_type": "project", "name": "WF"},
                "section": {"gid": s["gid"], "resource_type": "section", "name": s["name"]},
            }
        ]
        t["modified_at"] = now()
        self._event(
            user,
            "added",
            {"gid": gid, "resource_type": "task"},
            {"gid": s["gid"], "resource_type": "section"},
        )

    def _comment(self, gid: str, text: str, user: dict[str, Any]) -> dict[str, Any]:
        story = {
            "gid": self.gid(),
            "resource_type": "story",
            "type": "comment",
            "resource_subtype": "comment_added",
            "text": text,
            "created_at": now(),
            "created_by": {"gid": user["gid"], "name": user["name"], "resource_type": "user"},
        }
        self.stories.setdefault(gid, []).append(story)
        self._event(
            user,
            "added",
            {"gid": story["gid"], "resource_type": "story"},
            {"gid": gid, "resource_type": "task"},
        )
        return story

    # -- HTTP --------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/users/me", self.users_me, methods=["GET"]),
            Route("/projects/{gid}/sections", self.project_sections, methods=["GET"]),
            Route("/projects/{gid}/tasks", self.project_tasks, methods=["GET"]),
            Route("/sections/{gid}/tasks", self.section_tasks, methods=["GET"]),
            Route("/sections/{gid}/addTask", self.add_task, methods=["POST"]),
            Route("/tasks", self.create_task, methods=["POST"]),
            Route("/tasks/{gid}", self.task_item, methods=["GET", "PUT", "DELETE"]),
            Route("/tasks/{gid}/stories", self.task_stories, methods=["GET", "POST"]),
            Route("/events", self.get_events, methods=["GET"]),
            Route("/webhooks", self.create_webhook, methods=["POST"]),
        ]

    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(self.error_body(401, "Not Authorized"), status_code=401)
        return None

    def _err(self, status: int, message: str) -> Response:
        return JSONResponse(self.error_body(status, message), status_code=status)

    def _page(self, request: Request, items: list[dict[str, Any]], path: str) -> Response:
        limit = int(request.query_params.get("limit", "50"))
        if not 1 <= limit <= 100:
            return self._err(400, "limit: Value must be between 1 and 100")
        limit = min(limit, self.page_size)
        start = int(request.query_params.get("offset", "0") or 0)
        chunk = items[start : start + limit]
        nxt = None
        if start + limit < len(items):
            offset = str(start + limit)
            nxt = {
                "offset": offset,
                "path": f"{path}?limit={limit}&offset={offset}",
                "uri": f"{self.url}{path}",
            }
        return JSONResponse({"data": chunk, "next_page": nxt})

    def _visible(self) -> list[dict[str, Any]]:
        return [self._public(t) for t in self._tasks.values() if not t.get("_deleted")]

    @staticmethod
    def _public(t: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in t.items() if not k.startswith("_")}

    async def users_me(self, request: Request) -> Response:
        return self._auth(request) or JSONResponse({"data": self.me})

    async def project_sections(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        if request.path_params["gid"] != self.project_gid:
            return self._err(404, f"project: Unknown object: {request.path_params['gid']}")
        with self.lock:
            return self._page(request, list(self.sections.values()), request.url.path)

    async def project_tasks(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        with self.lock:
            return self._page(request, self._visible(), request.url.path)

    async def section_tasks(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        gid = request.path_params["gid"]
        with self.lock:
            items = [t for t in self._visible() if t["memberships"][0]["section"]["gid"] == gid]
            return self._page(request, items, request.url.path)

    async def add_task(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        body = await json_body(request)
        task = ((body or {}).get("data") or {}).get("task")
        with self.lock:
            if request.path_params["gid"] not in self.sections:
                return self._err(404, "section: Unknown object")
            if task not in self._tasks or self._tasks[task].get("_deleted"):
                return self._err(400, "task: Not a recognized ID")
            self._move(task, request.path_params["gid"], self.me)
        return JSONResponse({"data": {}})

    async def create_task(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        data = ((await json_body(request)) or {}).get("data")
        if not isinstance(data, dict) or not data.get("name"):
            return self._err(400, "name: Missing input")
        notes = data.get("html_notes", "<body></body>")
        if not _valid_html_notes(notes):
            return self._err(400, "html_notes: XML is invalid")
        with self.lock:
            if data.get("projects") != [self.project_gid]:
                return self._err(400, "projects: Not a recognized ID")
            sec = next(iter(self.sections))
            for m in data.get("memberships") or []:
                if m.get("section") in self.sections:
                    sec = m["section"]
            gid = self.gid()
            t = {
                "gid": gid,
                "resource_type": "task",
                "name": data["name"],
                "html_notes": notes,
                "notes": _plain(notes),
                "completed": False,
                "created_at": now(),
                "modified_at": now(),
                "permalink_url": f"https://app.asana.com/0/{self.project_gid}/{gid}",
                "memberships": [],
                "projects": [{"gid": self.project_gid, "resource_type": "project", "name": "WF"}],
            }
            self._tasks[gid] = t
            self._event(self.me, "added", {"gid": gid, "resource_type": "task"})
            self._move(gid, sec, self.me)
            return JSONResponse({"data": self._public(t)}, status_code=201)

    async def task_item(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        gid = request.path_params["gid"]
        with self.lock:
            t = self._tasks.get(gid)
            if t is None or t.get("_deleted"):
                return self._err(404, f"task: Unknown object: {gid}")
            if request.method == "GET":
                return JSONResponse({"data": self._public(t)})
            if request.method == "DELETE":
                t["_deleted"] = True
                self._event(self.me, "deleted", {"gid": gid, "resource_type": "task"})
                return JSONResponse({"data": {}})
        data = ((await json_body(request)) or {}).get("data")
        if not isinstance(data, dict):
            return self._err(400, "data: Missing input")
        if "html_notes" in data and not _valid_html_notes(data["html_notes"]):
            return self._err(400, "html_notes: XML is invalid")
        with self.lock:
            self._update(gid, data, self.me)
            return JSONResponse({"data": self._public(self._tasks[gid])})

    async def task_stories(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        gid = request.path_params["gid"]
        with self.lock:
            if gid not in self._tasks or self._tasks[gid].get("_deleted"):
                return self._err(404, f"task: Unknown object: {gid}")
            if request.method == "GET":
                return self._page(request, list(self.stories.get(gid, [])), request.url.path)
        data = ((await json_body(request)) or {}).get("data") or {}
        if not data.get("text") and not data.get("html_text"):
            return self._err(400, "text: Missing input")
        with self.lock:
            story = self._comment(gid, data.get("text") or _plain(data["html_text"]), self.me)
            self._tasks[gid]["modified_at"] = now()
        return JSONResponse({"data": story}, status_code=201)

    async def get_events(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        if request.query_params.get("resource") != self.project_gid:
            return self._err(400, "resource: Not a recognized ID")
        token = request.query_params.get("sync")
        with self.lock:
            if token is None or token not in self.sync_tokens:
                fresh = secrets.token_hex(16)
                self.sync_tokens[fresh] = len(self.events)
                message = (
                    "Sync token invalid or too old. If you are attempting to keep resources in sync, "
                    "you must fetch the full dataset for this query now and use the new sync token "
                    "for the next sync."
                )
                return JSONResponse({"errors": [{"message": message}], "sync": fresh}, status_code=412)
            start = self.sync_tokens[token]
            chunk = self.events[start : start + 100]
            fresh = secrets.token_hex(16)
            self.sync_tokens[fresh] = start + len(chunk)
            return JSONResponse(
                {"data": chunk, "sync": fresh, "has_more": start + len(chunk) < len(self.events)}
            )

    async def create_webhook(self, request: Request) -> Response:
        """Asana's handshake: it POSTs X-Hook-Secret to the target, which must echo it back."""
        import httpx

        if (bad := self._auth(request)) is not None:
            return bad
        data = ((await json_body(request)) or {}).get("data") or {}
        target = data.get("target")
        if not isinstance(target, str):
            return self._err(400, "target: Missing input")
        secret = secrets.token_hex(32)
        async with httpx.AsyncClient() as client:
            r = await client.post(target, headers={"X-Hook-Secret": secret}, content=b"")
        if r.status_code not in (200, 204) or r.headers.get("x-hook-secret") != secret:
            return self._err(400, "The remote server did not respond with the handshake secret.")
        with self.lock:
            self.webhook_url, self.hook_secret = target, secret
        return JSONResponse(
            {"data": {"gid": self.gid(), "resource_type": "webhook", "active": True, "target": target}},
            status_code=201,
        )
