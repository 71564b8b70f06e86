"""Asana: tasks of one project; stages are the project's sections (moved with addTask); notes are
html_notes; change detection is the events API with sync tokens (412 = the token expired: re-sync)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from wf_common.config import AsanaTarget

from wf_sync_bridge.adapters.base import (
    Changes,
    Http,
    NotFound,
    PermanentError,
    RemoteChange,
    RemoteComment,
    RemoteItem,
    StageMappingError,
    TaskAdapter,
    parse_time,
)
from wf_sync_bridge.fields import split_marker
from wf_sync_bridge.markup import asana_html_to_markdown, markdown_to_asana_html

TASK_FIELDS = "name,html_notes,modified_at,permalink_url,memberships.project.gid,memberships.section.name"
_MARKER_LINE = re.compile(r"\n*wf-sync:([a-z0-9-]+/[A-Z]+-[0-9]+)\s*$")


class AsanaAdapter(TaskAdapter):
    def __init__(self, target: AsanaTarget) -> None:
        self.name = target.target_name
        self.target = target
        self.http = Http(
            "asana",
            target.api_url(),
            headers={"Authorization": f"Bearer {target.access_token}"},
            timeout=target.timeout_seconds,
        )
        self._me = ""
        self.sections: dict[str, str] = {}  # section name -> gid

    @property
    def self_id(self) -> str:
        return self._me

    async def start(self, stages: list[str]) -> None:
        self._me = str((await self.http.json("GET", "/users/me"))["data"]["gid"])
        sections = await self._all(f"/projects/{self.target.project_gid}/sections", {"opt_fields": "name"})
        self.sections = {s["name"]: s["gid"] for s in sections}
        self._check(stages)

    def _check(self, names: list[str]) -> None:
        missing = [n for n in names if n not in self.sections]
        if missing:
            raise StageMappingError(
                f"asana project {self.target.project_gid} has no section(s) {missing}; "
                f"add them there or map the stages in task_backend.sync_to[{self.name}].stages "
                f"(sections: {sorted(self.sections)})"
            )

    async def close(self) -> None:
        await self.http.close()

    async def _all(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        query = {**params, "limit": 100}
        while True:
            page = await self.http.json("GET", path, params=query)
            out.extend(page["data"])
            nxt = page.get("next_page")
            if not nxt:
                return out
            query = {**params, "limit": 100, "offset": nxt["offset"]}

    def _item(self, t: dict[str, Any]) -> RemoteItem:
        md = asana_html_to_markdown(t.get("html_notes") or "")
        marker = None
        if m := _MARKER_LINE.search(md):
            md, marker = md[: m.start()], m.group(1)
        section = next(
            (
                (ms.get("section") or {}).get("name")
                for ms in t.get("memberships") or []
                if (ms.get("project") or {}).get("gid") == self.target.project_gid
            ),
            None,
        )
        return RemoteItem(
            remote_id=t["gid"],
            title=t.get("name") or "",
            body=md,
            stage=section,
            updated_at=parse_time(t["modified_at"]),
            url=t.get("permalink_url") or "",
            display_id=t["gid"],
            marker=marker,
        )

    @staticmethod
    def _notes(body: str) -> str:
        text, marker = split_marker(body)
        md = text.rstrip() + (f"\n\nwf-sync:{marker}" if marker else "")
        return markdown_to_asana_html(md)

    async def get_tasks_by_stage(self, stage: str) -> list[RemoteItem]:
        gid = self.sections[stage]
        return [self._item(t) for t in await self._all(f"/sections/{gid}/tasks", {"opt_fields": TASK_FIELDS})]

    async def get_task(self, remote_id: str) -> RemoteItem | None:
        try:
            t = await self.http.json("GET", f"/tasks/{remote_id}", params={"opt_fields": TASK_FIELDS})
        except NotFound:
            return None
        return self._item(t["data"])

    async def create_task(self, title: str, body: str, stage: str, marker: str) -> RemoteItem:
        data = {
            "name": title,
            "html_notes": self._notes(body),
            "projects": [self.target.project_gid],
            "memberships": [{"project": self.target.project_gid, "section": self.sections[stage]}],
        }
        t = await self.http.json("POST", "/tasks", params={"opt_fields": TASK_FIELDS}, json={"data": data})
        return self._item(t["data"])

    async def find_by_marker(self, marker: str) -> RemoteItem | None:
        tasks = await self._all(f"/projects/{self.target.project_gid}/tasks", {"opt_fields": TASK_FIELDS})
        return next((i for i in map(self._item, tasks) if i.marker == marker), None)

    async def delete_task(self, remote_id: str) -> str:
        await self.http.call("DELETE", f"/tasks/{remote_id}", expect=(404,))
        return "deleted"

    async def update_task(self, remote_id: str, *, title: str | None = None, body: str | None = None) -> None:
        data: dict[str, Any] = {}
        if title is not None:
            data["name"] = title
        if body is not None:
            data["html_notes"] = self._notes(body)
        if data:
            await self.http.json("PUT", f"/tasks/{remote_id}", json={"data": data})

    async def move_task_to_stage(self, remote_id: str, stage: str) -> None:
        gid = self.sections.get(stage)
        if gid is None:
            raise StageMappingError(f"asana has no section {stage!r}")
        await self.http.json("POST", f"/sections/{gid}/addTask", json={"data": {"task": remote_id}})

    async def add_comment(self, remote_id: str, text: str) -> str:
        s = await self.http.json("POST", f"/tasks/{remote_id}/stories", json={"data": {"text": text}})
        return str(s["data"]["gid"])

    async def list_comments(self, remote_id: str) -> list[RemoteComment]:
        stories = await self._all(
            f"/tasks/{remote_id}/stories", {"opt_fields": "type,text,created_at,created_by.name"}
        )
        return [
            RemoteComment(
                remote_id=s["gid"],
                text=s.get("text") or "",
                author_id=str((s.get("created_by") or {}).get("gid", "")),
                author_name=str((s.get("created_by") or {}).get("name", "")),
                created_at=parse_time(s["created_at"]),
            )
            for s in stories
            if s.get("type") == "comment"
        ]

    async def changes_since(self, cursor: str | None, since: datetime | None) -> Changes:
        """Events on the project. Without a token (first run) or with an expired one, Asana answers
        412 with a fresh token: the caller reconciles everything once and continues from there."""
        out = Changes(cursor=cursor)
        params: dict[str, Any] = {"resource": self.target.project_gid}
        while True:
            if out.cursor:
                params["sync"] = out.cursor
            r = await self.http.call("GET", "/events", params=params, expect=(412,))
            page = r.json()
            if r.status_code == 412:
                if not page.get("sync"):
                    raise PermanentError("asana: 412 from /events without a new sync token")
                return Changes(cursor=page["sync"], full_resync=True)
            for ev in page.get("data") or []:
                res, parent = ev.get("resource") or {}, ev.get("parent") or {}
                actor = str((ev.get("user") or {}).get("gid", "")) or None
                if res.get("resource_type") == "task":
                    out.changes.append(
                        RemoteChange(res["gid"], actor_id=actor, deleted=ev.get("action") == "deleted")
                    )
                elif res.get("resource_type") == "story" and parent.get("resource_type") == "task":
                    out.changes.append(RemoteChange(parent["gid"], actor_id=actor))
            out.cursor = page.get("sync") or out.cursor
            if not page.get("has_more"):
                return out
