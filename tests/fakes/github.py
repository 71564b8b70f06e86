"""A fake GitHub REST API (issues) over a real socket: token auth, integer ids and numbers, second-
resolution Z timestamps, per_page/page paging with Link headers, X-RateLimit-* headers on every answer
(403 with remaining 0, or 429 with Retry-After, when limited), issue lists that include pull requests,
labels, state/state_reason, `since`, comments, and webhooks signed with X-Hub-Signature-256.

Control: human_update(number, title=, body=), human_label(number, labels), human_close(number),
human_comment(number, text), issue(number), issues(), add_pull_request(title), fail(...), calls(...).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.tracker import FakeTracker, json_body


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGithub(FakeTracker):
    name = "github"

    def __init__(
        self,
        *,
        token: str = "gh-token",  # noqa: S107 - the fake's test token
        owner: str = "acme",
        repo: str = "app",
        pull_requests: int = 2,
    ) -> None:
        super().__init__()
        self.token, self.owner, self.repo = token, owner, repo
        self.me = {"login": "wf-bot", "id": 9_000_001, "type": "Bot"}
        self.human = {"login": "octo-human", "id": 583_231, "type": "User"}
        self._ids = itertools.count(1_000_000_001)
        self._numbers = itertools.count(1)
        self._issues: dict[int, dict[str, Any]] = {}
        self.labels: dict[str, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.remaining = 5000
        for i in range(pull_requests):
            self.add_pull_request(f"PR {i + 1}")

    # -- control -----------------------------------------------------------------------------------

    def issue(self, number: int | str) -> dict[str, Any]:
        with self.lock:
            return dict(self._issues[int(number)])

    def issues(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(i) for i in self._issues.values() if "pull_request" not in i]

    def add_pull_request(self, title: str) -> None:
        with self.lock:
            pr = self._new(title, "a pull request", self.human)
            pr["pull_request"] = {"url": f"{self.url}/repos/{self.owner}/{self.repo}/pulls/{pr['number']}"}

    def human_create(self, title: str, body: str = "") -> int:
        with self.lock:
            return int(self._new(title, body, self.human)["number"])

    def human_update(self, number: int | str, **fields: Any) -> None:
        with self.lock:
            i = self._issues[int(number)]
            i.update({k: v for k, v in fields.items() if k in ("title", "body")})
            i["updated_at"] = now()

    def human_label(self, number: int | str, labels: list[str]) -> None:
        with self.lock:
            i = self._issues[int(number)]
            i["labels"] = [self._label(n) for n in labels]
            i["updated_at"] = now()

    def human_close(self, number: int | str) -> None:
        with self.lock:
            i = self._issues[int(number)]
            i.update(state="closed", state_reason="completed", closed_at=now(), updated_at=now())

    def human_comment(self, number: int | str, text: str) -> None:
        with self.lock:
            self._comment(self._issues[int(number)], text, self.human)

    def sign(self, body: bytes) -> dict[str, str]:
        assert self.webhook_secret is not None
        digest = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        return {
            "X-Hub-Signature-256": f"sha256={digest}",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Event": "issues",
        }

    # -- state -------------------------------------------------------------------------------------

    def _label(self, name: str) -> dict[str, Any]:
        if name not in self.labels:
            self.labels[name] = {
                "id": next(self._ids),
                "name": name,
                "color": "ededed",
                "default": False,
                "description": None,
            }
        return self.labels[name]

    def _new(self, title: str, body: str | None, user: dict[str, Any]) -> dict[str, Any]:
        n = next(self._numbers)
        base = f"{self.url}/repos/{self.owner}/{self.repo}"
        issue = {
            "id": next(self._ids),
            "node_id": f"I_kwDO{n:08d}",
            "number": n,
            "title": title,
            "body": body,
            "state": "open",
            "state_reason": None,
            "labels": [],
            "user": user,
            "comments": 0,
            "created_at": now(),
            "updated_at": now(),
            "closed_at": None,
            "url": f"{base}/issues/{n}",
            "html_url": f"https://github.com/{self.owner}/{self.repo}/issues/{n}",
            "repository_url": base,
        }
        self._issues[n] = issue
        return issue

    def _comment(self, issue: dict[str, Any], text: str, user: dict[str, Any]) -> dict[str, Any]:
        c = {
            "id": next(self._ids),
            "body": text,
            "user": user,
            "created_at": now(),
            "updated_at": now(),
            "html_url": f"{issue['html_url']}#issuecomment-{len(self.comments)}",
        }
        self.comments.setdefault(issue["number"], []).append(c)
        issue["comments"] += 1
        issue["updated_at"] = now()
        return c

    # -- HTTP --------------------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        return {
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": str(status),
        }

    def routes(self) -> list[Route]:
        repo = f"/repos/{self.owner}/{self.repo}"
        return [
            Route("/user", self.user, methods=["GET"]),
            Route(repo, self.repository, methods=["GET"]),
            Route(f"{repo}/labels", self.repo_labels, methods=["GET", "POST"]),
            Route(f"{repo}/issues", self.repo_issues, methods=["GET", "POST"]),
            Route(f"{repo}/issues/{{number:int}}", self.issue_item, methods=["GET", "PATCH"]),
            Route(f"{repo}/issues/{{number:int}}/comments", self.issue_comments, methods=["GET", "POST"]),
        ]

    def _headers(self) -> dict[str, str]:
        with self.lock:
            self.remaining = max(0, self.remaining - 1)
            return {
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(int(datetime.now(UTC).timestamp()) + 3600),
                "X-RateLimit-Resource": "core",
            }

    def _json(self, content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(content, status_code=status, headers={**self._headers(), **(headers or {})})

    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("authorization") not in (f"Bearer {self.token}", f"token {self.token}"):
            return self._json(self.error_body(401, "Bad credentials"), 401)
        return None

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        per_page = min(int(request.query_params.get("per_page", 30)), 100)
        page = int(request.query_params.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            q = dict(request.query_params)
            q["page"] = str(page + 1)
            headers["Link"] = f'<{self.url}{request.url.path}?{urlencode(q)}>; rel="next"'
        return self._json(chunk, headers=headers)

    async def user(self, request: Request) -> Response:
        return self._auth(request) or self._json(self.me)

    async def repository(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        return self._json(
            {
                "id": 1296269,
                "name": self.repo,
                "full_name": f"{self.owner}/{self.repo}",
                "owner": {"login": self.owner, "id": 1},
                "url": f"{self.url}/repos/{self.owner}/{self.repo}",
                "has_issues": True,
            }
        )

    async def repo_labels(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        if request.method == "GET":
            with self.lock:
                return self._page(request, list(self.labels.values()))
        body = (await json_body(request)) or {}
        name = body.get("name")
        with self.lock:
            if not isinstance(name, str) or not name:
                return self._json(
                    {"message": "Validation Failed", "errors": [{"field": "name", "code": "missing"}]}, 422
                )
            if name in self.labels:
                return self._json(
                    {
                        "message": "Validation Failed",
                        "errors": [{"resource": "Label", "code": "already_exists"}],
                    },
                    422,
                )
            return self._json(self._label(name), 201)

    async def repo_issues(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        if request.method == "POST":
            body = (await json_body(request)) or {}
            if not isinstance(body.get("title"), str) or not body["title"]:
                return self._json(
                    {"message": "Validation Failed", "errors": [{"field": "title", "code": "missing_field"}]},
                    422,
                )
            with self.lock:
                issue = self._new(body["title"], body.get("body"), self.me)
                issue["labels"] = [self._label(n) for n in body.get("labels") or []]
                return self._json(issue, 201)
        q = request.query_params
        with self.lock:
            items = list(self._issues.values())
            state = q.get("state", "open")
            if state != "all":
                items = [i for i in items if i["state"] == state]
            if q.get("labels"):
                wanted = set(q["labels"].split(","))
                items = [i for i in items if wanted <= {lb["name"] for lb in i["labels"]}]
            if q.get("since"):
                items = [i for i in items if i["updated_at"] >= q["since"]]
            key = "updated_at" if q.get("sort") == "updated" else "created_at"
            items.sort(key=lambda i: (i[key], i["number"]), reverse=q.get("direction", "desc") == "desc")
            return self._page(request, items)

    async def issue_item(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        n = request.path_params["number"]
        with self.lock:
            issue = self._issues.get(n)
            if issue is None:
                return self._json(self.error_body(404, "Not Found"), 404)
            if request.method == "GET":
                return self._json(issue)
        body = (await json_body(request)) or {}
        if body.get("state") not in (None, "open", "closed"):
            return self._json(
                {"message": "Validation Failed", "errors": [{"field": "state", "code": "invalid"}]}, 422
            )
        with self.lock:
            for k in ("title", "body"):
                if k in body:
                    issue[k] = body[k]
            if "labels" in body:
                issue["labels"] = [self._label(x) for x in body["labels"]]
            if body.get("state") == "closed" and issue["state"] != "closed":
                issue.update(
                    state="closed", state_reason=body.get("state_reason", "completed"), closed_at=now()
                )
            elif body.get("state") == "open" and issue["state"] != "open":
                issue.update(state="open", state_reason="reopened", closed_at=None)
            issue["updated_at"] = now()
            return self._json(issue)

    async def issue_comments(self, request: Request) -> Response:
        if (bad := self._auth(request)) is not None:
            return bad
        n = request.path_params["number"]
        with self.lock:
            issue = self._issues.get(n)
            if issue is None:
                return self._json(self.error_body(404, "Not Found"), 404)
            if request.method == "GET":
                return self._page(request, list(self.comments.get(n, [])))
        body = (await json_body(request)) or {}
        if not isinstance(body.get("body"), str) or not body["body"]:
            return self._json(
                {"message": "Validation Failed", "errors": [{"field": "body", "code": "missing_field"}]}, 422
            )
        with self.lock:
            return self._json(self._comment(issue, body["body"], self.me), 201)
