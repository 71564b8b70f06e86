"""Linear (GraphQL): issues of one team; stages are the team's workflow states; creates carry a
client-supplied id (derived from the task), so a create whose answer was lost is found by that id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from wf_common.config import LinearTarget

from wf_sync_bridge.adapters.base import (
    Changes,
    Http,
    PermanentError,
    RateLimited,
    RemoteChange,
    RemoteComment,
    RemoteItem,
    StageMappingError,
    TaskAdapter,
    parse_time,
)
from wf_sync_bridge.fields import split_marker

_NS = uuid.UUID("6f1c3a52-7d0e-4c55-9b8a-2f4a1e0c9d11")
ISSUE = "id identifier title description url updatedAt state { name }"


def issue_id(marker: str) -> str:
    """The client-supplied id of the issue made for `marker` (stable, so a retry reuses it)."""
    return str(uuid.uuid5(_NS, marker))


class LinearAdapter(TaskAdapter):
    def __init__(self, target: LinearTarget) -> None:
        self.name = target.target_name
        self.target = target
        self.http = Http(
            "linear",
            target.api_url(),
            headers={"Authorization": target.key, "Content-Type": "application/json"},
            timeout=target.timeout_seconds,
        )
        self._me = ""
        self.team_id = ""
        self.states: dict[str, str] = {}

    @property
    def self_id(self) -> str:
        return self._me

    async def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        r = await self.http.call(
            "POST", "/graphql", json={"query": query, "variables": variables}, expect=(400,)
        )
        body = r.json()
        errors = body.get("errors") or []
        for e in errors:
            if (e.get("extensions") or {}).get("code") == "RATELIMITED":
                raise RateLimited("linear: rate limited", retry_after=_reset(r.headers))
        if errors:
            raise PermanentError(
                "linear: " + "; ".join(str(e.get("message")) for e in errors), status=r.status_code
            )
        return dict(body["data"])

    async def start(self, stages: list[str]) -> None:
        data = await self.gql(
            "query($key: String!) { viewer { id } teams(filter: {key: {eq: $key}}) "
            "{ nodes { id key states { nodes { id name type } } } } }",
            key=self.target.team,
        )
        self._me = data["viewer"]["id"]
        teams = data["teams"]["nodes"]
        if not teams:
            raise StageMappingError(
                f"linear has no team with key {self.target.team!r}; "
                f"set task_backend.sync_to[{self.name}].team"
            )
        self.team_id = teams[0]["id"]
        self.states = {s["name"]: s["id"] for s in teams[0]["states"]["nodes"]}
        missing = [s for s in stages if s not in self.states]
        if missing:
            raise StageMappingError(
                f"linear team {self.target.team} has no workflow state(s) {missing}; add them or map the "
                f"stages in task_backend.sync_to[{self.name}].stages (states: {sorted(self.states)})"
            )

    async def close(self) -> None:
        await self.http.close()

    @staticmethod
    def _item(i: dict[str, Any]) -> RemoteItem:
        body = i.get("description") or ""
        return RemoteItem(
            remote_id=i["id"],
            title=i.get("title") or "",
            body=body,
            stage=(i.get("state") or {}).get("name"),
            updated_at=parse_time(i["updatedAt"]),
            url=i.get("url") or "",
            display_id=i.get("identifier") or "",
            marker=split_marker(body)[1],
        )

    async def get_tasks_by_stage(self, stage: str) -> list[RemoteItem]:
        out: list[RemoteItem] = []
        after: str | None = None
        while True:
            data = await self.gql(
                "query($team: ID!, $state: String!, $after: String) { issues(first: 50, after: $after, "
                "filter: {team: {id: {eq: $team}}, state: {name: {eq: $state}}}) "
                f"{{ nodes {{ {ISSUE} }} pageInfo {{ hasNextPage endCursor }} }} }}",
                team=self.team_id,
                state=stage,
                after=after,
            )
            out.extend(self._item(i) for i in data["issues"]["nodes"])
            if not data["issues"]["pageInfo"]["hasNextPage"]:
                return out
            after = data["issues"]["pageInfo"]["endCursor"]

    async def get_task(self, remote_id: str) -> RemoteItem | None:
        try:
            data = await self.gql(f"query($id: String!) {{ issue(id: $id) {{ {ISSUE} }} }}", id=remote_id)
        except PermanentError as err:
            if "not found" in str(err).lower():
                return None
            raise
        return self._item(data["issue"]) if data.get("issue") else None

    async def create_task(self, title: str, body: str, stage: str, marker: str) -> RemoteItem:
        data = await self.gql(
            "mutation($input: IssueCreateInput!) { issueCreate(input: $input) "
            f"{{ success issue {{ {ISSUE} }} }} }}",
            input={
                "id": issue_id(marker),
                "teamId": self.team_id,
                "title": title,
                "description": body,
                "stateId": self.states[stage],
            },
        )
        return self._item(data["issueCreate"]["issue"])

    async def find_by_marker(self, marker: str) -> RemoteItem | None:
        return await self.get_task(issue_id(marker))

    async def _update(self, remote_id: str, patch: dict[str, Any]) -> None:
        await self.gql(
            "mutation($id: String!, $input: IssueUpdateInput!) "
            "{ issueUpdate(id: $id, input: $input) { success } }",
            id=remote_id,
            input=patch,
        )

    async def delete_task(self, remote_id: str) -> str:
        # issueDelete moves the issue to Linear's trash (restorable for 30 days there).
        try:
            await self.gql("mutation($id: String!) { issueDelete(id: $id) { success } }", id=remote_id)
        except PermanentError as err:
            if "not found" not in str(err).lower():
                raise
        return "deleted"

    async def update_task(self, remote_id: str, *, title: str | None = None, body: str | None = None) -> None:
        patch = {k: v for k, v in (("title", title), ("description", body)) if v is not None}
        if patch:
            await self._update(remote_id, patch)

    async def move_task_to_stage(self, remote_id: str, stage: str) -> None:
        if stage not in self.states:
            raise StageMappingError(f"linear has no workflow state {stage!r}")
        await self._update(remote_id, {"stateId": self.states[stage]})

    async def add_comment(self, remote_id: str, text: str) -> str:
        data = await self.gql(
            "mutation($input: CommentCreateInput!) "
            "{ commentCreate(input: $input) { success comment { id } } }",
            input={"issueId": remote_id, "body": text},
        )
        return str(data["commentCreate"]["comment"]["id"])

    async def list_comments(self, remote_id: str) -> list[RemoteComment]:
        data = await self.gql(
            "query($id: String!) { issue(id: $id) { comments(first: 250) "
            "{ nodes { id body createdAt user { id name } } } } }",
            id=remote_id,
        )
        return [
            RemoteComment(
                remote_id=c["id"],
                text=c.get("body") or "",
                author_id=str((c.get("user") or {}).get("id", "")),
                author_name=str((c.get("user") or {}).get("name", "")),
                created_at=parse_time(c["createdAt"]),
            )
            for c in ((data.get("issue") or {}).get("comments") or {}).get("nodes") or []
        ]

    async def changes_since(self, cursor: str | None, since: datetime | None) -> Changes:
        out, after = Changes(), None
        flt: dict[str, Any] = {"team": {"id": {"eq": self.team_id}}}
        if since is not None:
            flt["updatedAt"] = {"gte": since.astimezone(UTC).isoformat().replace("+00:00", "Z")}
        while True:
            data = await self.gql(
                "query($filter: IssueFilter, $after: String) { issues(first: 50, after: $after, "
                "filter: $filter, orderBy: updatedAt) "
                "{ nodes { id updatedAt } pageInfo { hasNextPage endCursor } } }",
                filter=flt,
                after=after,
            )
            out.changes.extend(
                RemoteChange(i["id"], updated_at=parse_time(i["updatedAt"])) for i in data["issues"]["nodes"]
            )
            if not data["issues"]["pageInfo"]["hasNextPage"]:
                return out
            after = data["issues"]["pageInfo"]["endCursor"]


def _reset(headers: Any) -> float:
    reset = headers.get("x-ratelimit-requests-reset")
    if reset:
        try:
            return max(0.0, float(reset) / 1000 - datetime.now(UTC).timestamp())
        except ValueError:
            pass
    return 5.0
