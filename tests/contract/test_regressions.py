"""What Schemathesis found (issue 10), each as a request a user or a client could send, against the real
board API and orchestrator: every one was a 500, a failed command in the orchestrator, a schema-valid
request refused, an undeclared status, a 405 without Allow, or a workspace made where it must not be."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.stack import LiveStack

JSON = {"Content-Type": "application/json"}


def fields(response: httpx.Response) -> list[str]:
    return [f["field"] for f in response.json().get("fields", [])]


@pytest.fixture(scope="module")
def http(stack: LiveStack) -> Any:
    with stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def project(http: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    workspace = tmp_path_factory.mktemp("ws") / "regressions"
    response = http.post("/api/projects", json={"slug": "regressions", "workspace": str(workspace)})
    assert response.status_code == 201, response.text
    return "regressions"


def test_a_nul_in_a_query_parameter_is_a_422_naming_it_not_a_database_error(http: httpx.Client) -> None:
    response = http.get("/api/bugs", params={"task": "\x00A\t"})
    assert response.status_code == 422, response.text
    assert fields(response) == ["query.task"]
    for path, name in (("/api/tasks", "project"), ("/api/board", "project"), ("/api/tasks", "key")):
        response = http.get(path, params={name: "a\x00"})
        assert response.status_code == 422, response.text
        assert fields(response) == [f"query.{name}"]


def test_a_nul_in_an_idea_is_refused_before_the_orchestrator(
    http: httpx.Client, project: str, stack: LiveStack
) -> None:
    response = http.post(f"/api/projects/{project}/ideas", json={"text": "export\x00 lists"})
    assert response.status_code == 422, response.text
    assert fields(response) == ["body.text"]
    assert "NUL" in response.json()["message"]
    assert http.get("/api/tasks", params={"project": project}).json() == []
    assert "Traceback" not in stack.orchestrator_log()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"slug": "nul", "workspace": "/tmp/wf-nul\\u0000x"}', "body.workspace"),
        (b'{"slug": "surrogate", "workspace": "/tmp/wf-s", "name": "a\\ud800b"}', "body.name"),
        (b'{"slug": "surrogate", "workspace": "/tmp/wf-\\udfff"}', "body.workspace"),
        (b'{"slug": "tab", "workspace": "/tmp/wf-t", "name": "a\\tb"}', "body.name"),
    ],
)
def test_nul_and_lone_surrogates_in_a_project_are_422_naming_the_field(
    http: httpx.Client, stack: LiveStack, raw: bytes, field: str
) -> None:
    response = http.post("/api/projects", content=raw, headers=JSON)
    assert response.status_code == 422, response.text
    assert fields(response) == [field]
    assert "Traceback" not in stack.orchestrator_log()
    assert not any(p.name.startswith("wf-") for p in Path("/tmp").iterdir() if p.name in ("wf-s", "wf-t"))


def test_a_body_that_is_not_json_is_a_declared_400(http: httpx.Client) -> None:
    response = http.post("/api/projects", content=b'{"slug": ', headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize("relative", ["0", "v", "projects/listsnap", "./here", "~/x"])
def test_a_relative_workspace_is_refused_and_nothing_is_made_where_the_server_runs(
    http: httpx.Client, stack: LiveStack, relative: str
) -> None:
    before = sorted(p.name for p in stack.tmp.iterdir())
    response = http.post("/api/projects", json={"slug": f"rel-{uuid.uuid4().hex[:6]}", "workspace": relative})
    assert response.status_code == 422, response.text
    assert fields(response) == ["body.workspace"]
    assert "absolute path" in response.json()["message"]
    assert sorted(p.name for p in stack.tmp.iterdir()) == before


@pytest.mark.parametrize(
    ("workspace", "why"),
    [
        ("/", "cannot be /"),
        ("/etc", "system directory /etc"),
        ("/usr/local/src/x", "system directory /usr"),
        ("/proc/self", "system directory /proc"),
        ("/home", "holds everybody's files"),
        ("/tmp/../etc/x", "without '.', '..'"),
    ],
)
def test_a_workspace_may_not_be_the_root_or_a_system_directory(
    http: httpx.Client, workspace: str, why: str
) -> None:
    response = http.post("/api/projects", json={"slug": "nope", "workspace": workspace})
    assert response.status_code == 422, response.text
    assert why in response.json()["message"]
    assert fields(response) == ["body.workspace"]


def test_the_home_directory_itself_is_refused_saying_why(http: httpx.Client) -> None:
    home = os.path.expanduser("~")  # the orchestrator runs as this same user
    response = http.post("/api/projects", json={"slug": "home", "workspace": home})
    assert response.status_code in (409, 422), response.text
    assert f"cannot be {home}" in response.json()["message"] or "home directory" in response.json()["message"]
    assert http.get("/api/projects/home").status_code == 404


def test_a_workspace_another_project_uses_is_409_naming_that_project(
    http: httpx.Client, tmp_path: Path
) -> None:
    workspace = tmp_path / "shared"
    first = http.post("/api/projects", json={"slug": "first-owner", "workspace": str(workspace)})
    assert first.status_code == 201, first.text
    for spelling in (str(workspace), f"{workspace}/"):
        second = http.post("/api/projects", json={"slug": "second-owner", "workspace": spelling})
        assert second.status_code == 409, second.text
        assert "'first-owner'" in second.json()["message"]
    link = tmp_path / "link"
    link.symlink_to(workspace)
    third = http.post("/api/projects", json={"slug": "second-owner", "workspace": str(link)})
    assert third.status_code == 409, third.text
    assert "'first-owner'" in third.json()["message"]
    assert http.get("/api/projects/second-owner").status_code == 404


def test_a_refused_workspace_creates_nothing_on_disk(http: httpx.Client, tmp_path: Path) -> None:
    workspace = tmp_path / "taken"
    assert (
        http.post("/api/projects", json={"slug": "taken-by", "workspace": str(workspace)}).status_code == 201
    )
    fresh = tmp_path / "never-made" / "deeper"
    response = http.post("/api/projects", json={"slug": "taken-by", "workspace": str(fresh)})
    assert response.status_code == 409  # the slug is taken: refused before the directory is made
    assert not (tmp_path / "never-made").exists()


def test_schema_valid_requests_are_not_refused_as_invalid(http: httpx.Client, project: str) -> None:
    # A lower-case key is what the schema allows: the task does not exist, so 404, never 422.
    assert http.get(f"/api/projects/{project}/tasks/t-001").status_code == 404
    assert http.post(f"/api/projects/{project}/tasks/t-001/retry").status_code == 404
    # Every stage the schema lists is accepted.
    stages = json.loads(http.get("/openapi.json").text)["paths"]["/api/tasks"]["get"]["parameters"]
    stage = next(p for p in stages if p["name"] == "stage")["schema"]["anyOf"][0]["enum"]
    for name in stage:
        assert http.get("/api/tasks", params={"stage": name}).status_code == 200
    assert http.get("/api/tasks", params={"stage": "nowhere"}).status_code == 422


def test_every_api_operation_declares_the_errors_it_can_return(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            declared = set(operation["responses"])
            if path.startswith("/api/"):
                assert {"400", "401", "403", "421", "422", "503"} <= declared, (method, path)
            if method != "get":
                assert {"404", "409"} <= declared, (method, path)
            error = operation["responses"].get("422", {}).get("content", {}).get("application/json", {})
            if path.startswith("/api/"):
                assert error["schema"] == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/projects", "GET, POST"),
        ("OPTIONS", "/api/control/pause", "POST"),
        ("PUT", "/api/projects/x/tasks/T-001", "GET, PATCH"),
    ],
)
def test_a_405_names_every_method_of_the_path_in_allow(
    http: httpx.Client, method: str, path: str, allowed: str
) -> None:
    response = http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"] == "method_not_allowed"


def test_docs_load_without_the_internet(http: httpx.Client) -> None:
    page = http.get("/docs")
    assert page.status_code == 200
    urls = [u for u in __import__("re").findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)]
    assert urls, page.text
    assert all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    for url in urls:
        assert http.get(url).status_code == 200, url


def test_rolling_back_an_idea_is_a_conflict_not_an_invalid_request(http: httpx.Client, project: str) -> None:
    """Schema-valid (an existing stage), refused for the task's state: 409, as declared, not 422."""
    idea = http.post(f"/api/projects/{project}/ideas", json={"text": "an idea to roll back"})
    assert idea.status_code in (200, 201, 202), idea.text
    key = idea.json()["task"]["key"]
    response = http.post(f"/api/projects/{project}/tasks/{key}/rollback", json={"to_stage": "dev"})
    assert response.status_code == 409, response.text
    assert "is an idea" in response.json()["message"]
