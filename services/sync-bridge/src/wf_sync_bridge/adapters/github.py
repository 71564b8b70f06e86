"""GitHub Issues: one repository; stages are `stage:<name>` labels, and the final stage is a closed
issue; the create marker is a hidden HTML comment in the body; polling uses `since`. The issues list
includes pull requests, which are skipped."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
from wf_common.config import FINAL_STAGE, GithubTarget

from wf_sync_bridge.adapters.base import (
    Changes,
    Http,
    NotFound,
    RemoteChange,
    RemoteComment,
    RemoteItem,
    TaskAdapter,
    parse_time,
)
from wf_sync_bridge.fields import split_marker

STAGE_LABEL = "stage:"
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class GithubAdapter(TaskAdapter):
    def __init__(self, target: GithubTarget) -> None:
        self.name = target.target_name
        self.target = target
        self.repo = f"/repos/{target.owner}/{target.repo}"
        self.http = Http(
            "github",
            target.api_url(),
            headers={
                "Authorization": f"Bearer {target.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            timeout=target.timeout_seconds,
        )
        self._me = ""
        self.done = target.remote_stage(FINAL_STAGE)

    @property
    def self_id(self) -> str:
        return self._me

    async def start(self, stages: list[str]) -> None:
        self._me = str((await self.http.json("GET", "/user"))["id"])
        have = {label["name"] for label in await self._all(f"{self.repo}/labels", {})}
        # Labels are ours to make: a missing stage label is created rather than reported.
        for stage in stages:
            if stage != self.done and STAGE_LABEL + stage not in have:
                await self.http.json(
                    "POST", f"{self.repo}/labels", json={"name": STAGE_LABEL + stage, "color": "ededed"}
                )

    async def close(self) -> None:
        await self.http.close()

    async def _all(self, path: str, params: dict[str, Any], *, pages: int = 1000) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        url: str | None = path
        query: dict[str, Any] | None = {**params, "per_page": 100}
        while url and pages > 0:
            r = await self.http.call("GET", url, params=query)
            out.extend(r.json())
            m = _NEXT.search(r.headers.get("link", ""))
            url, query, pages = (str(httpx.URL(m.group(1))) if m else None), None, pages - 1
        return out

    def _item(self, issue: dict[str, Any]) -> RemoteItem:
        labels = [lb["name"] if isinstance(lb, dict) else str(lb) for lb in issue.get("labels") or []]
        stage = next((lb[len(STAGE_LABEL) :] for lb in labels if lb.startswith(STAGE_LABEL)), None)
        if issue.get("state") == "closed":
            stage = self.done
        body = issue.get("body") or ""
        return RemoteItem(
            remote_id=str(issue["number"]),
            title=issue.get("title") or "",
            body=body,
            stage=stage,
            updated_at=parse_time(issue["updated_at"]),
            url=issue.get("html_url") or "",
            display_id=f"#{issue['number']}",
            marker=split_marker(body)[1],
        )

    async def get_tasks_by_stage(self, stage: str) -> list[RemoteItem]:
        params = (
            {"state": "closed"} if stage == self.done else {"state": "open", "labels": STAGE_LABEL + stage}
        )
        return [
            self._item(i) for i in await self._all(f"{self.repo}/issues", params) if "pull_request" not in i
        ]

    async def get_task(self, remote_id: str) -> RemoteItem | None:
        r = await self.http.call("GET", f"{self.repo}/issues/{remote_id}", expect=(404, 410))
        if r.status_code in (404, 410):
            return None
        return self._item(r.json())

    def _labels_for(self, current: list[str], stage: str) -> list[str]:
        kept = [lb for lb in current if not lb.startswith(STAGE_LABEL)]
        return kept if stage == self.done else [*kept, STAGE_LABEL + stage]

    async def create_task(self, title: str, body: str, stage: str, marker: str) -> RemoteItem:
        issue = await self.http.json(
            "POST",
            f"{self.repo}/issues",
            json={"title": title, "body": body, "labels": self._labels_for([], stage)},
        )
        if stage == self.done:
            issue = await self.http.json(
                "PATCH",
                f"{self.repo}/issues/{issue['number']}",
                json={"state": "closed", "state_reason": "completed"},
            )
        return self._item(issue)

    async def find_by_marker(self, marker: str) -> RemoteItem | None:
        # The newest issues first: a create whose answer was lost is among them.
        recent = await self._all(
            f"{self.repo}/issues", {"state": "all", "sort": "created", "direction": "desc"}, pages=3
        )
        for issue in recent:
            if "pull_request" not in issue and split_marker(issue.get("body") or "")[1] == marker:
                return self._item(issue)
        return None

    async def delete_task(self, remote_id: str) -> str:
        # The REST API cannot delete an issue (only an admin, in the web UI or GraphQL): close it as
        # not planned, which is what "deleted" means for a tracker of record.
        r = await self.http.call(
            "PATCH",
            f"{self.repo}/issues/{remote_id}",
            json={"state": "closed", "state_reason": "not_planned"},
            expect=(404, 410),
        )
        return "closed" if r.status_code < 400 else "deleted"

    async def update_task(self, remote_id: str, *, title: str | None = None, body: str | None = None) -> None:
        data = {k: v for k, v in (("title", title), ("body", body)) if v is not None}
        if data:
            await self.http.json("PATCH", f"{self.repo}/issues/{remote_id}", json=data)

    async def move_task_to_stage(self, remote_id: str, stage: str) -> None:
        issue = await self.http.json("GET", f"{self.repo}/issues/{remote_id}")
        if issue is None:
            raise NotFound(f"github: issue {remote_id} is gone")
        current = [lb["name"] for lb in issue.get("labels") or []]
        data: dict[str, Any] = {"labels": self._labels_for(current, stage)}
        if stage == self.done:
            data.update(state="closed", state_reason="completed")
        elif issue.get("state") == "closed":
            data.update(state="open")
        await self.http.json("PATCH", f"{self.repo}/issues/{remote_id}", json=data)

    async def add_comment(self, remote_id: str, text: str) -> str:
        c = await self.http.json("POST", f"{self.repo}/issues/{remote_id}/comments", json={"body": text})
        return str(c["id"])

    async def list_comments(self, remote_id: str) -> list[RemoteComment]:
        return [
            RemoteComment(
                remote_id=str(c["id"]),
                text=c.get("body") or "",
                author_id=str((c.get("user") or {}).get("id", "")),
                author_name=str((c.get("user") or {}).get("login", "")),
                created_at=parse_time(c["created_at"]),
            )
            for c in await self._all(f"{self.repo}/issues/{remote_id}/comments", {})
        ]

    async def changes_since(self, cursor: str | None, since: datetime | None) -> Changes:
        params: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "asc"}
        if since is not None:
            params["since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        issues = await self._all(f"{self.repo}/issues", params)
        return Changes(
            changes=[
                RemoteChange(str(i["number"]), updated_at=parse_time(i["updated_at"]))
                for i in issues
                if "pull_request" not in i
            ]
        )
