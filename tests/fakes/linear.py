"""A fake Linear GraphQL API (POST /graphql) over a real socket: API-key auth, uuid ids and ENG-1
identifiers, millisecond Z timestamps, Relay-style paging (first/after, pageInfo), client-supplied
ids on issueCreate (a second create with the same id fails), workflow states, comments, GraphQL
errors with extension codes (RATELIMITED with HTTP 400, as Linear does), and webhooks signed with
Linear-Signature (HMAC-SHA256 hex of the body) carrying webhookTimestamp.

It answers the operations the bridge sends, recognised by their root field (viewer, teams, issue,
issues, issueCreate, issueUpdate, issueDelete, commentCreate); an unknown operation is a GraphQL
validation error.

Control: human_update(id, title=, description=), human_move(id, state), human_comment(id, text),
human_delete(id), issue(id), issues(), fail(...), calls(...).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.tracker import FakeTracker, json_body


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeLinear(FakeTracker):
    name = "linear"

    def __init__(
        self,
        *,
        key: str = "lin_api_test",
        team: str = "ENG",
        states: list[str] | None = None,
        page_size: int = 50,
    ) -> None:
        super().__init__()
        self.key, self.team_key = key, team
        self.team_id = str(uuid.uuid4())
        self.me = {"id": str(uuid.uuid4()), "name": "Workflow Hub bot"}
        self.human = {"id": str(uuid.uuid4()), "name": "Linus Human"}
        self.states = {
            name: {"id": str(uuid.uuid4()), "name": name, "type": "unstarted"}
            for name in states or ["Todo", "Done"]
        }
        self.page_size = page_size
        self._numbers = itertools.count(1)
        self._issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}

    # -- control -----------------------------------------------------------------------------------

    def issue(self, issue_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self._issues[issue_id])

    def issues(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(i) for i in self._issues.values() if not i.get("_deleted")]

    def human_update(self, issue_id: str, **fields: Any) -> None:
        with self.lock:
            i = self._issues[issue_id]
            i.update({k: v for k, v in fields.items() if k in ("title", "description")})
            i["updatedAt"] = now()

    def human_move(self, issue_id: str, state: str) -> None:
        with self.lock:
            i = self._issues[issue_id]
            i["state"] = self._state(state)
            i["updatedAt"] = now()

    def human_comment(self, issue_id: str, text: str) -> None:
        with self.lock:
            self._comment(self._issues[issue_id], text, self.human)

    def human_delete(self, issue_id: str) -> None:
        with self.lock:
            self._issues[issue_id]["_deleted"] = True

    def sign(self, body: bytes) -> dict[str, str]:
        assert self.webhook_secret is not None
        return {
            "Linear-Signature": hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest(),
            "Linear-Delivery": str(uuid.uuid4()),
        }

    def issue_event(self, issue_id: str, action: str = "update") -> dict[str, Any]:
        return {
            "action": action,
            "type": "Issue",
            "data": {"id": issue_id},
            "webhookTimestamp": int(time.time() * 1000),
        }

    # -- state -------------------------------------------------------------------------------------

    def _state(self, name: str) -> dict[str, Any]:
        return {"id": self.states[name]["id"], "name": name}

    def _public(self, i: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in i.items() if not k.startswith("_")}

    def _comment(self, issue: dict[str, Any], text: str, user: dict[str, Any]) -> dict[str, Any]:
        c = {"id": str(uuid.uuid4()), "body": text, "createdAt": now(), "user": dict(user)}
        self.comments.setdefault(issue["id"], []).append(c)
        issue["updatedAt"] = now()
        return c

    # -- HTTP --------------------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        code = "RATELIMITED" if status == 429 else "INTERNAL_SERVER_ERROR"
        return {
            "errors": [{"message": message, "extensions": {"code": code, "userPresentableMessage": message}}]
        }

    def routes(self) -> list[Route]:
        return [Route("/graphql", self.graphql, methods=["POST"])]

    @staticmethod
    def _gql_error(message: str, code: str, status: int = 400) -> Response:
        return JSONResponse(
            {"errors": [{"message": message, "extensions": {"code": code}}], "data": None}, status_code=status
        )

    def _page(self, items: list[dict[str, Any]], first: int, after: str | None) -> dict[str, Any]:
        start = int(after) if after else 0
        size = min(first, self.page_size)
        chunk = items[start : start + size]
        more = start + size < len(items)
        return {
            "nodes": chunk,
            "pageInfo": {"hasNextPage": more, "endCursor": str(start + size) if chunk else None},
        }

    async def graphql(self, request: Request) -> Response:
        if request.headers.get("authorization") not in (self.key, f"Bearer {self.key}"):
            return self._gql_error("Authentication required, not authenticated", "AUTHENTICATION_ERROR", 400)
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return self._gql_error("Must provide query string.", "GRAPHQL_VALIDATION_FAILED")
        q, v = body["query"], body.get("variables") or {}
        root = re.search(r"\{\s*(\w+)", q)
        op = root.group(1) if root else ""
        with self.lock:
            if op == "viewer":
                teams = [
                    {
                        "id": self.team_id,
                        "key": self.team_key,
                        "states": {"nodes": list(self.states.values())},
                    }
                ]
                teams = [t for t in teams if t["key"] == v.get("key")]
                return JSONResponse({"data": {"viewer": self.me, "teams": {"nodes": teams}}})
            if op == "issue":
                i = self._issues.get(v.get("id", ""))
                if i is None or i.get("_deleted"):
                    return JSONResponse(
                        {
                            "data": None,
                            "errors": [
                                {
                                    "message": "Entity not found: Issue",
                                    "extensions": {"code": "INVALID_INPUT"},
                                }
                            ],
                        }
                    )
                out = self._public(i)
                out["comments"] = self._page(self.comments.get(i["id"], []), 250, None)
                return JSONResponse({"data": {"issue": out}})
            if op == "issues":
                return JSONResponse({"data": {"issues": self._issues_query(v)}})
            if op == "issueCreate":
                return self._create(v.get("input") or {})
            if op == "issueUpdate":
                return self._update(v.get("id", ""), v.get("input") or {})
            if op == "issueDelete":  # to the trash: gone from queries, like a real delete
                i = self._issues.get(v.get("id", ""))
                if i is None or i.get("_deleted"):
                    return self._gql_error("Entity not found: Issue", "INVALID_INPUT")
                i["_deleted"] = True
                return JSONResponse({"data": {"issueDelete": {"success": True}}})
            if op == "commentCreate":
                inp = v.get("input") or {}
                i = self._issues.get(inp.get("issueId", ""))
                if i is None or not inp.get("body"):
                    return self._gql_error("Argument Validation Error", "INVALID_INPUT")
                return JSONResponse(
                    {
                        "data": {
                            "commentCreate": {
                                "success": True,
                                "comment": self._comment(i, inp["body"], self.me),
                            }
                        }
                    }
                )
        return self._gql_error(f'Cannot query field "{op}" on type "Query".', "GRAPHQL_VALIDATION_FAILED")

    def _issues_query(self, v: dict[str, Any]) -> dict[str, Any]:
        flt = v.get("filter") or {}
        if "team" not in flt and v.get("team"):
            flt = {"team": {"id": {"eq": v["team"]}}, "state": {"name": {"eq": v.get("state")}}}
        items = [self._public(i) for i in self._issues.values() if not i.get("_deleted")]
        if (flt.get("state") or {}).get("name", {}).get("eq"):
            items = [i for i in items if i["state"]["name"] == flt["state"]["name"]["eq"]]
        if (flt.get("updatedAt") or {}).get("gte"):
            items = [i for i in items if i["updatedAt"] >= flt["updatedAt"]["gte"]]
        items.sort(key=lambda i: i["updatedAt"])
        return self._page(items, int(v.get("first") or 50), v.get("after"))

    def _create(self, inp: dict[str, Any]) -> Response:
        if inp.get("teamId") != self.team_id:
            return self._gql_error("Argument Validation Error: teamId", "INVALID_INPUT")
        if not inp.get("title"):
            return self._gql_error("Argument Validation Error: title should not be empty", "INVALID_INPUT")
        iid = inp.get("id") or str(uuid.uuid4())
        if iid in self._issues:
            return self._gql_error("Entity with this id already exists", "INVALID_INPUT")
        state = next(
            (s for s in self.states.values() if s["id"] == inp.get("stateId")),
            next(iter(self.states.values())),
        )
        n = next(self._numbers)
        issue = {
            "id": iid,
            "identifier": f"{self.team_key}-{n}",
            "number": n,
            "title": inp["title"],
            "description": inp.get("description") or "",
            "url": f"https://linear.app/acme/issue/{self.team_key}-{n}",
            "createdAt": now(),
            "updatedAt": now(),
            "state": {"id": state["id"], "name": state["name"]},
        }
        self._issues[iid] = issue
        return JSONResponse({"data": {"issueCreate": {"success": True, "issue": self._public(issue)}}})

    def _update(self, iid: str, inp: dict[str, Any]) -> Response:
        issue = self._issues.get(iid)
        if issue is None or issue.get("_deleted"):
            return self._gql_error("Entity not found: Issue", "INVALID_INPUT")
        for k in ("title", "description"):
            if k in inp:
                issue[k] = inp[k]
        if "stateId" in inp:
            state = next((s for s in self.states.values() if s["id"] == inp["stateId"]), None)
            if state is None:
                return self._gql_error("Argument Validation Error: stateId", "INVALID_INPUT")
            issue["state"] = {"id": state["id"], "name": state["name"]}
        issue["updatedAt"] = now()
        return JSONResponse({"data": {"issueUpdate": {"success": True, "issue": self._public(issue)}}})
