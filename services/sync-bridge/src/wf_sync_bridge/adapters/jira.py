"""Jira Cloud REST v3: issues of one project; stages are statuses reached through the workflow's
transitions (several hops if needed); descriptions and comments are ADF; polling is `search/jql` with
`updated >=`; the create marker is a label plus an issue property."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from wf_common.config import JiraTarget

from wf_sync_bridge.adapters.base import (
    Changes,
    Http,
    NotFound,
    RemoteChange,
    RemoteComment,
    RemoteItem,
    StageMappingError,
    TaskAdapter,
    parse_time,
)
from wf_sync_bridge.fields import split_marker
from wf_sync_bridge.markup import adf_to_markdown, markdown_to_adf

API = "/rest/api/3"
FIELDS = ["summary", "description", "status", "updated", "labels"]
PROPERTY = "wf.sync"
MAX_HOPS = 12


def marker_label(marker: str) -> str:
    return "wf-sync:" + marker.replace("/", ":")


def _label_marker(labels: list[str]) -> str | None:
    for label in labels:
        if label.startswith("wf-sync:") and label.count(":") == 2:
            _, project, key = label.split(":")
            return f"{project}/{key}"
    return None


class JiraAdapter(TaskAdapter):
    def __init__(self, target: JiraTarget, stage_order: list[str] | None = None) -> None:
        self.name = target.target_name
        self.target = target
        self.http = Http(
            "jira",
            target.api_url(),
            headers={"Content-Type": "application/json"},
            timeout=target.timeout_seconds,
            auth=httpx.BasicAuth(target.email, target.api_token),
        )
        self._me = ""
        self.statuses: list[str] = []
        # Remote status names in pipeline order: picks the hop that heads toward the target status.
        self.order = stage_order or []

    @property
    def self_id(self) -> str:
        return self._me

    async def start(self, stages: list[str]) -> None:
        self._me = str((await self.http.json("GET", f"{API}/myself"))["accountId"])
        per_type = await self.http.json("GET", f"{API}/project/{self.target.project_key}/statuses")
        kinds = {t["name"]: [s["name"] for s in t["statuses"]] for t in per_type}
        if self.target.issue_type not in kinds:
            raise StageMappingError(
                f"jira project {self.target.project_key} has no issue type {self.target.issue_type!r}; "
                f"set task_backend.sync_to[{self.name}].issue_type to one of {sorted(kinds)}"
            )
        self.statuses = kinds[self.target.issue_type]
        missing = [s for s in stages if s not in self.statuses]
        if missing:
            raise StageMappingError(
                f"jira project {self.target.project_key} has no status(es) {missing} for "
                f"{self.target.issue_type}; add them to its workflow or map the stages in "
                f"task_backend.sync_to[{self.name}].stages (statuses: {self.statuses})"
            )
        self.order = self.order or stages

    async def close(self) -> None:
        await self.http.close()

    def _item(self, issue: dict[str, Any]) -> RemoteItem:
        f = issue["fields"]
        return RemoteItem(
            remote_id=str(issue["id"]),
            title=f.get("summary") or "",
            body=adf_to_markdown(f.get("description")),
            stage=(f.get("status") or {}).get("name"),
            updated_at=parse_time(f["updated"]),
            url=f"{self.target.url}/browse/{issue['key']}",
            display_id=issue["key"],
            marker=_label_marker(f.get("labels") or []),
        )

    async def _search(self, jql: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        body: dict[str, Any] = {"jql": jql, "fields": FIELDS, "maxResults": 50}
        while True:
            page = await self.http.json("POST", f"{API}/search/jql", json=body)
            out.extend(page.get("issues") or [])
            token = page.get("nextPageToken")
            if page.get("isLast", True) or not token:
                return out
            body = {**body, "nextPageToken": token}

    async def get_tasks_by_stage(self, stage: str) -> list[RemoteItem]:
        issues = await self._search(f'project = {self.target.project_key} AND status = "{stage}"')
        return [self._item(i) for i in issues]

    async def get_task(self, remote_id: str) -> RemoteItem | None:
        try:
            issue = await self.http.json(
                "GET", f"{API}/issue/{remote_id}", params={"fields": ",".join(FIELDS)}
            )
        except NotFound:
            return None
        return self._item(issue)

    async def create_task(self, title: str, body: str, stage: str, marker: str) -> RemoteItem:
        text, _ = split_marker(body)
        created = await self.http.json(
            "POST",
            f"{API}/issue",
            json={
                "fields": {
                    "project": {"key": self.target.project_key},
                    "summary": title,
                    "description": markdown_to_adf(text),
                    "issuetype": {"name": self.target.issue_type},
                    "labels": [marker_label(marker)],
                },
                "properties": [{"key": PROPERTY, "value": {"marker": marker}}],
            },
        )
        await self.move_task_to_stage(str(created["id"]), stage)
        item = await self.get_task(str(created["id"]))
        if item is None:
            raise NotFound(f"jira: issue {created['key']} vanished right after it was created")
        return item

    async def find_by_marker(self, marker: str) -> RemoteItem | None:
        jql = f'project = {self.target.project_key} AND labels = "{marker_label(marker)}"'
        for issue in await self._search(jql):
            prop = await self.http.call(
                "GET", f"{API}/issue/{issue['id']}/properties/{PROPERTY}", expect=(404,)
            )
            if prop.status_code == 200 and (prop.json().get("value") or {}).get("marker") == marker:
                return self._item(issue)
        return None

    async def delete_task(self, remote_id: str) -> str:
        await self.http.call("DELETE", f"{API}/issue/{remote_id}", expect=(404,))
        return "deleted"

    async def update_task(self, remote_id: str, *, title: str | None = None, body: str | None = None) -> None:
        fields: dict[str, Any] = {}
        if title is not None:
            fields["summary"] = title
        if body is not None:
            fields["description"] = markdown_to_adf(split_marker(body)[0])
        if fields:
            await self.http.call("PUT", f"{API}/issue/{remote_id}", json={"fields": fields})

    async def move_task_to_stage(self, remote_id: str, stage: str) -> None:
        """Walk the workflow: take a transition straight to `stage` when there is one, else the hop to
        the unvisited status nearest to it in pipeline order; report a status it cannot reach."""
        visited: list[str] = []
        for _ in range(MAX_HOPS):
            issue = await self.http.json("GET", f"{API}/issue/{remote_id}", params={"fields": "status"})
            here = issue["fields"]["status"]["name"]
            if here == stage:
                return
            visited.append(here)
            page = await self.http.json("GET", f"{API}/issue/{remote_id}/transitions")
            options = [(t["id"], t["to"]["name"]) for t in page.get("transitions") or []]
            direct = next((tid for tid, to in options if to == stage), None)
            if direct is None:
                fresh = [(tid, to) for tid, to in options if to not in visited]
                if not fresh:
                    break
                direct = min(fresh, key=lambda o: self._distance(o[1], stage))[0]
            await self.http.call(
                "POST", f"{API}/issue/{remote_id}/transitions", json={"transition": {"id": direct}}
            )
        raise StageMappingError(
            f"jira: status {stage!r} cannot be reached from {visited[0] if visited else '?'} through the "
            f"workflow's transitions (tried {' → '.join(visited)}); add a transition to the workflow"
        )

    def _distance(self, status: str, goal: str) -> int:
        if status in self.order and goal in self.order:
            return abs(self.order.index(status) - self.order.index(goal))
        return len(self.order) + 1

    async def add_comment(self, remote_id: str, text: str) -> str:
        c = await self.http.json(
            "POST", f"{API}/issue/{remote_id}/comment", json={"body": markdown_to_adf(text)}
        )
        return str(c["id"])

    async def list_comments(self, remote_id: str) -> list[RemoteComment]:
        out: list[RemoteComment] = []
        start = 0
        while True:
            page = await self.http.json(
                "GET", f"{API}/issue/{remote_id}/comment", params={"startAt": start, "maxResults": 50}
            )
            for c in page.get("comments") or []:
                out.append(
                    RemoteComment(
                        remote_id=str(c["id"]),
                        text=adf_to_markdown(c.get("body")),
                        author_id=str((c.get("author") or {}).get("accountId", "")),
                        author_name=str((c.get("author") or {}).get("displayName", "")),
                        created_at=parse_time(c["created"]),
                    )
                )
            start += len(page.get("comments") or [])
            if not page.get("comments") or start >= int(page.get("total", 0)):
                return out

    async def changes_since(self, cursor: str | None, since: datetime | None) -> Changes:
        jql = f"project = {self.target.project_key}"
        if since is not None:
            # JQL compares in minutes, in the user's time zone; the bridge's account is set to UTC.
            jql += f' AND updated >= "{since.astimezone(UTC).strftime("%Y/%m/%d %H:%M")}"'
        issues = await self._search(jql + " ORDER BY updated ASC")
        return Changes(
            changes=[
                RemoteChange(str(i["id"]), updated_at=parse_time(i["fields"]["updated"])) for i in issues
            ]
        )
