"""A fake Jira Cloud (REST API v3) over a real socket: basic auth, numeric-string ids and WF-1 keys,
timestamps like 2026-01-01T10:00:00.000+0000, {"errorMessages", "errors"} failures, ADF validation of
descriptions and comments, a workflow whose statuses are reachable only through transitions to their
neighbours (so some moves take several hops), issue properties, labels, `search/jql` with
nextPageToken paging and the JQL the bridge uses (project, labels, status, updated >=), comments with
startAt paging, and signed webhooks (X-Hub-Signature: sha256=...).

Control: human_update(key, summary=, description_md=), human_transition(key, status),
human_comment(key, text), human_delete(key), issue(key), issues(), fail(...), calls(...).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.tracker import FakeTracker, json_body

API = "/rest/api/3"
_SYSTEM_FIELDS = [
    ("summary", "string"),
    ("description", "string"),
    ("status", "status"),
    ("labels", "array"),
    ("issuetype", "issuetype"),
    ("project", "project"),
    ("created", "datetime"),
    ("updated", "datetime"),
    ("comment", "comments-page"),
]


def _field(field_id: str, kind: str) -> dict[str, Any]:
    return {
        "id": field_id,
        "key": field_id,
        "name": field_id.capitalize() if field_id != "issuetype" else "Issue Type",
        "custom": False,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": [field_id],
        "schema": {"type": kind, "system": field_id},
    }


_ADF_BLOCKS = {
    "paragraph",
    "heading",
    "bulletList",
    "orderedList",
    "listItem",
    "codeBlock",
    "blockquote",
    "rule",
}
_ADF_INLINE = {"text", "hardBreak", "mention", "emoji", "inlineCard"}


def now() -> str:
    return (
        datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{datetime.now(UTC).microsecond // 1000:03d}+0000"
    )


def parse_jira_time(v: str) -> datetime:
    return datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%f%z")


def valid_adf(doc: Any) -> bool:
    if not isinstance(doc, dict) or doc.get("type") != "doc" or doc.get("version") != 1:
        return False
    if not isinstance(doc.get("content"), list):
        return False

    def ok(node: Any) -> bool:
        if not isinstance(node, dict):
            return False
        kind = node.get("type")
        if kind == "text":
            return isinstance(node.get("text"), str) and node["text"] != ""
        if kind in _ADF_INLINE:
            return True
        if kind not in _ADF_BLOCKS:
            return False
        if kind == "heading" and (node.get("attrs") or {}).get("level") not in range(1, 7):
            return False
        return all(ok(c) for c in node.get("content") or [])

    return all(ok(n) for n in doc["content"])


def adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in text.split("\n\n") if p
        ],
    }


class FakeJira(FakeTracker):
    name = "jira"

    def __init__(
        self,
        *,
        email: str = "bot@example.com",
        token: str = "jira-token",  # noqa: S107 - the fake's test token
        project_key: str = "WF",
        statuses: list[str] | None = None,
        page_size: int = 50,
    ) -> None:
        super().__init__()
        self.email, self.token, self.project_key = email, token, project_key
        self.statuses = statuses or ["To Do", "In Progress", "Done"]
        self.page_size = page_size
        self.me = {
            "accountId": "5b10a2844c20165700ede21g",
            "displayName": "Workflow Hub bot",
            "timeZone": "UTC",
        }
        self.human = {
            "accountId": "5b10ac8d82e05b22cc7d4ef5",
            "displayName": "Grace Human",
            "timeZone": "UTC",
        }
        self._ids = itertools.count(10000)
        self._number = itertools.count(1)
        self._issues: dict[str, dict[str, Any]] = {}  # id -> issue
        self.properties: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.unreachable: set[str] = set()  # statuses no transition leads to

    # -- control -----------------------------------------------------------------------------------

    def issues(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(i) for i in self._issues.values() if not i.get("_deleted")]

    def issue(self, id_or_key: str) -> dict[str, Any]:
        with self.lock:
            found = self._find(id_or_key)
            assert found is not None, id_or_key
            return found

    def status_of(self, id_or_key: str) -> str:
        return str(self.issue(id_or_key)["fields"]["status"]["name"])

    def human_update(self, id_or_key: str, **fields: Any) -> None:
        with self.lock:
            i = self._find(id_or_key)
            assert i is not None
            if "description_md" in fields:
                fields["description"] = adf(fields.pop("description_md"))
            i["fields"].update(fields)
            self._touch(i)

    def human_transition(self, id_or_key: str, status: str) -> None:
        with self.lock:
            i = self._find(id_or_key)
            assert i is not None
            i["fields"]["status"] = self._status(status)
            self._touch(i)

    def human_comment(self, id_or_key: str, text: str) -> None:
        with self.lock:
            i = self._find(id_or_key)
            assert i is not None
            self._comment(i, adf(text), self.human)

    def human_delete(self, id_or_key: str) -> None:
        with self.lock:
            i = self._find(id_or_key)
            assert i is not None
            i["_deleted"] = True

    def sign(self, body: bytes) -> dict[str, str]:
        assert self.webhook_secret is not None
        return {
            "X-Hub-Signature": "sha256="
            + hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        }

    # -- state -------------------------------------------------------------------------------------

    def _find(self, id_or_key: str) -> dict[str, Any] | None:
        i = self._issues.get(id_or_key) or next(
            (x for x in self._issues.values() if x["key"] == id_or_key), None
        )
        return None if i is None or i.get("_deleted") else i

    def _status(self, name: str) -> dict[str, Any]:
        idx = self.statuses.index(name)
        category = "new" if idx == 0 else "done" if idx == len(self.statuses) - 1 else "indeterminate"
        return {
            "self": f"{self.url}{API}/status/{idx + 1}",
            "id": str(idx + 1),
            "name": name,
            "untranslatedName": name,
            "statusCategory": {"key": category},
        }

    def _touch(self, issue: dict[str, Any]) -> None:
        issue["fields"]["updated"] = now()

    def _comment(self, issue: dict[str, Any], body: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
        c = {
            "self": f"{self.url}{API}/issue/{issue['id']}/comment/{len(self.comments) + 1}",
            "id": str(next(self._ids)),
            "author": {"accountId": user["accountId"], "displayName": user["displayName"]},
            "body": body,
            "created": now(),
            "updated": now(),
        }
        self.comments.setdefault(issue["id"], []).append(c)
        self._touch(issue)
        return c

    def _transitions(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        here = self.statuses.index(issue["fields"]["status"]["name"])
        out = []
        for j in (here - 1, here + 1):
            if 0 <= j < len(self.statuses) and self.statuses[j] not in self.unreachable:
                name = self.statuses[j]
                out.append(
                    {
                        "id": str(11 + j),
                        "name": f"Move to {name}",
                        "to": self._status(name),
                        "hasScreen": False,
                    }
                )
        return out

    # -- HTTP --------------------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        return {"errorMessages": [message], "errors": {}}

    def routes(self) -> list[Route]:
        return [
            Route(f"{API}/serverInfo", self.server_info, methods=["GET"]),
            Route("/rest/api/2/serverInfo", self.server_info, methods=["GET"]),
            Route(f"{API}/myself", self.myself, methods=["GET"]),
            Route(f"{API}/field", self.fields, methods=["GET"]),
            Route(f"{API}/project/{{key}}/statuses", self.project_statuses, methods=["GET"]),
            Route(f"{API}/issue", self.create_issue, methods=["POST"]),
            Route(f"{API}/issue/{{id}}", self.issue_item, methods=["GET", "PUT", "DELETE"]),
            Route(f"{API}/issue/{{id}}/transitions", self.transitions, methods=["GET", "POST"]),
            Route(f"{API}/issue/{{id}}/comment", self.issue_comments, methods=["GET", "POST"]),
            Route(f"{API}/issue/{{id}}/properties/{{prop}}", self.issue_property, methods=["GET", "PUT"]),
            Route(f"{API}/search/jql", self.search_jql, methods=["POST", "GET"]),
        ]

    def _auth(self, request: Request) -> Response | None:
        expected = "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse(
                self.error_body(401, "Client must be authenticated to access this resource."), 401
            )
        return None

    def _err(self, status: int, message: str, errors: dict[str, str] | None = None) -> Response:
        return JSONResponse(
            {"errorMessages": [message] if message else [], "errors": errors or {}}, status_code=status
        )

    def _public(self, issue: dict[str, Any], fields: str | None = None) -> dict[str, Any]:
        f = issue["fields"]
        if fields and fields not in ("*all", "*navigable"):
            wanted = set(fields.split(","))
            f = {k: v for k, v in f.items() if k in wanted}
        return {"expand": "", "id": issue["id"], "self": issue["self"], "key": issue["key"], "fields": f}

    async def server_info(self, request: Request) -> Response:
        return JSONResponse(
            {
                "baseUrl": self.url,
                "version": "1001.0.0-SNAPSHOT",
                "versionNumbers": [1001, 0, 0],
                "deploymentType": "Cloud",
                "buildNumber": 100000,
                "serverTitle": "Jira",
            }
        )

    async def fields(self, request: Request) -> Response:
        """The system fields the fake knows (GET /field lists them; SDKs map names to ids from it)."""
        if (denied := self._auth(request)) is not None:
            return denied
        return JSONResponse([_field(f, t) for f, t in _SYSTEM_FIELDS])

    async def myself(self, request: Request) -> Response:
        return self._auth(request) or JSONResponse({**self.me, "emailAddress": self.email, "active": True})

    async def project_statuses(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        if request.path_params["key"] != self.project_key:
            return self._err(404, f"No project could be found with key '{request.path_params['key']}'.")
        return JSONResponse(
            [
                {
                    "id": "10001",
                    "name": "Task",
                    "subtask": False,
                    "statuses": [self._status(s) for s in self.statuses],
                }
            ]
        )

    async def create_issue(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        body = (await json_body(request)) or {}
        f = body.get("fields") or {}
        errors: dict[str, str] = {}
        if (f.get("project") or {}).get("key") != self.project_key:
            errors["project"] = "valid project is required"
        if not isinstance(f.get("summary"), str) or not f["summary"].strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(f["summary"]) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        if (f.get("issuetype") or {}).get("name") != "Task":
            errors["issuetype"] = "valid issue type is required"
        if "description" in f and f["description"] is not None and not valid_adf(f["description"]):
            errors["description"] = (
                "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
            )
        labels = f.get("labels") or []
        if any(not isinstance(lb, str) or " " in lb for lb in labels):
            errors["labels"] = "The label can't contain spaces."
        if errors:
            return self._err(400, "", errors)
        with self.lock:
            iid = str(next(self._ids))
            key = f"{self.project_key}-{next(self._number)}"
            issue = {
                "id": iid,
                "key": key,
                "self": f"{self.url}{API}/issue/{iid}",
                "fields": {
                    "summary": f["summary"],
                    "description": f.get("description"),
                    "labels": labels,
                    "status": self._status(self.statuses[0]),
                    "issuetype": {"name": "Task", "id": "10001"},
                    "project": {"key": self.project_key, "id": "10000"},
                    "created": now(),
                    "updated": now(),
                },
            }
            self._issues[iid] = issue
            for prop in body.get("properties") or []:
                self.properties.setdefault(iid, {})[prop["key"]] = prop["value"]
            return JSONResponse({"id": iid, "key": key, "self": issue["self"]}, status_code=201)

    async def issue_item(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        with self.lock:
            issue = self._find(request.path_params["id"])
            if issue is None:
                return self._err(404, "Issue does not exist or you do not have permission to see it.")
            if request.method == "GET":
                return JSONResponse(self._public(issue, request.query_params.get("fields")))
            if request.method == "DELETE":
                issue["_deleted"] = True
                return Response(status_code=204)
        f = ((await json_body(request)) or {}).get("fields") or {}
        if "description" in f and f["description"] is not None and not valid_adf(f["description"]):
            return self._err(400, "", {"description": "Operation value must be an Atlassian Document"})
        if "summary" in f and (not isinstance(f["summary"], str) or not f["summary"].strip()):
            return self._err(400, "", {"summary": "You must specify a summary of the issue."})
        unknown = set(f) - {"summary", "description", "labels"}
        if unknown:
            return self._err(
                400, "", {k: "Field cannot be set. It is not on the appropriate screen." for k in unknown}
            )
        with self.lock:
            issue["fields"].update(f)
            self._touch(issue)
        return Response(status_code=204)

    async def transitions(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        with self.lock:
            issue = self._find(request.path_params["id"])
            if issue is None:
                return self._err(404, "Issue does not exist or you do not have permission to see it.")
            options = self._transitions(issue)
            if request.method == "GET":
                return JSONResponse({"expand": "transitions", "transitions": options})
        tid = (((await json_body(request)) or {}).get("transition") or {}).get("id")
        with self.lock:
            chosen = next((t for t in options if t["id"] == str(tid)), None)
            if chosen is None:
                return self._err(400, f"Transition id '{tid}' is not valid for this issue.")
            issue["fields"]["status"] = chosen["to"]
            self._touch(issue)
        return Response(status_code=204)

    async def issue_comments(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        with self.lock:
            issue = self._find(request.path_params["id"])
            if issue is None:
                return self._err(404, "Issue does not exist or you do not have permission to see it.")
            if request.method == "GET":
                all_ = self.comments.get(issue["id"], [])
                start = int(request.query_params.get("startAt", 0))
                size = min(int(request.query_params.get("maxResults", 50)), self.page_size)
                return JSONResponse(
                    {
                        "startAt": start,
                        "maxResults": size,
                        "total": len(all_),
                        "comments": all_[start : start + size],
                    }
                )
        body = ((await json_body(request)) or {}).get("body")
        if not isinstance(body, dict) or not valid_adf(body):
            return self._err(400, "", {"comment": "Comment body is not valid Atlassian Document Format."})
        with self.lock:
            c = self._comment(issue, body, self.me)
        return JSONResponse(c, status_code=201)

    async def issue_property(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        iid, prop = request.path_params["id"], request.path_params["prop"]
        with self.lock:
            issue = self._find(iid)
            if issue is None:
                return self._err(404, "Issue does not exist or you do not have permission to see it.")
            if request.method == "GET":
                value = self.properties.get(issue["id"], {}).get(prop)
                if value is None:
                    return self._err(404, f"The property with key '{prop}' does not exist.")
                return JSONResponse({"key": prop, "value": value})
        value = await json_body(request)
        with self.lock:
            self.properties.setdefault(issue["id"], {})[prop] = value
        return Response(status_code=200)

    def _jql(self, jql: str) -> list[dict[str, Any]] | str:
        clause, _, order = jql.partition(" ORDER BY ")
        preds = []
        for part in re.split(r"\s+AND\s+", clause.strip(), flags=re.IGNORECASE):
            m = re.fullmatch(r'(\w+)\s*(=|>=)\s*"?([^"]*)"?', part.strip())
            if not m:
                return f"Error in the JQL Query: '{part}'"
            preds.append(m.groups())
        out = []
        for issue in self._issues.values():
            if issue.get("_deleted"):
                continue
            f = issue["fields"]
            keep = True
            for name, op, value in preds:
                if name == "project":
                    keep &= f["project"]["key"] == value
                elif name == "labels":
                    keep &= value in f["labels"]
                elif name == "status":
                    keep &= f["status"]["name"] == value
                elif name == "updated" and op == ">=":
                    since = datetime.strptime(value, "%Y/%m/%d %H:%M").replace(tzinfo=UTC)
                    keep &= parse_jira_time(f["updated"]) >= since
                else:
                    return f"Field '{name}' is not supported here"
            if keep:
                out.append(issue)
        if order.strip().lower().startswith("updated"):
            out.sort(key=lambda i: i["fields"]["updated"], reverse=order.strip().lower().endswith("desc"))
        return out

    async def search_jql(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        body = (await json_body(request)) or dict(request.query_params)
        with self.lock:
            found = self._jql(str(body.get("jql", "")))
            if isinstance(found, str):
                return self._err(400, found)
            start = int(body.get("nextPageToken") or 0)
            size = min(int(body.get("maxResults", 50)), self.page_size)
            fields = body.get("fields")
            fields_s = ",".join(fields) if isinstance(fields, list) else fields
            chunk = [self._public(i, fields_s) for i in found[start : start + size]]
            last = start + size >= len(found)
            out: dict[str, Any] = {"issues": chunk, "isLast": last}
            if not last:
                out["nextPageToken"] = str(start + size)
            return JSONResponse(out)
