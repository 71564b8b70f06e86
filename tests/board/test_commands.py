"""Writes: each is forwarded to the real orchestrator as its wf_common command, recorded as who
authenticated (never who the request says), and the orchestrator's answer comes back as HTTP (data on
success, its error code as a status)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_board_api.app import create_app
from wf_board_api.settings import BoardSettings
from wf_common.commands import (
    COMMAND_ADAPTER,
    AddFeedback,
    Approve,
    CreateProject,
    EditTask,
    KillBug,
    Pause,
    Reject,
    Resume,
    RetryTask,
)
from wf_orchestrator.app import Orchestrator

from tests.board.conftest import AUTH_HEADERS, BOARD_URL, CommandTap, lifespan_app, new_project


async def test_create_project_returns_201_with_the_orchestrators_reply(
    client: httpx.AsyncClient, orchestrator: Orchestrator, commands: CommandTap, tmp_path: Path
) -> None:
    workspace = tmp_path / "listsnap"
    response = await client.post(
        "/api/projects", json={"slug": "listsnap", "name": "ListSnap", "workspace": str(workspace)}
    )
    assert response.status_code == 201, response.text
    project = response.json()["project"]
    assert (project["slug"], project["name"], project["workspace"]) == (
        "listsnap",
        "ListSnap",
        str(workspace),
    )
    [command] = commands.sent()
    assert isinstance(command, CreateProject)
    assert (command.slug, command.name, command.workspace, command.test_command) == (
        "listsnap",
        "ListSnap",
        str(workspace),
        None,
    )
    listed = (await client.get("/api/projects")).json()
    assert [p["slug"] for p in listed] == ["listsnap"]


async def test_the_recorded_actor_is_the_tokens_holder_whatever_the_request_says(
    client: httpx.AsyncClient,
    orchestrator: Orchestrator,
    commands: CommandTap,
    db: AsyncConnection,
    tmp_path: Path,
) -> None:
    await new_project(client, tmp_path / "listsnap")
    # Claiming someone else is refused, naming the header; nothing is sent.
    claimed = await client.post(
        "/api/projects/listsnap/ideas",
        json={"text": "Export lists as CSV"},
        headers={"X-WF-Actor": "agent:pm"},
    )
    assert claimed.status_code == 422, claimed.text
    assert claimed.json()["fields"][0]["field"] == "header.X-WF-Actor"
    assert "the actor is who authenticated (human:owner" in claimed.json()["message"]
    in_body = await client.post("/api/projects/listsnap/ideas", json={"text": "Export lists", "actor": "mz"})
    assert in_body.status_code == 422
    assert in_body.json()["fields"][0]["field"] == "body.actor"
    assert [c.type for c in commands.sent()] == ["create_project"]

    # Naming oneself is allowed; a tool may say it acted for the holder, and an MCP client is
    # recorded as itself.
    same = await client.post(
        "/api/projects/listsnap/ideas",
        json={"text": "Export lists as CSV"},
        headers={"X-WF-Actor": "human:owner"},
    )
    assert same.status_code == 201, same.text
    tool = await client.post(
        "/api/projects/listsnap/ideas", json={"text": "Import lists"}, headers={"X-WF-Client": "mcp:cursor"}
    )
    assert tool.status_code == 201, tool.text
    script = await client.post(
        "/api/projects/listsnap/ideas", json={"text": "Sort lists"}, headers={"X-WF-Client": "nightly.sh"}
    )
    assert script.status_code == 201, script.text
    created = (await db.execute(text("SELECT task_key, created_by FROM tasks ORDER BY task_key"))).all()
    assert [tuple(r) for r in created] == [
        (same.json()["task"]["key"], "human:owner"),
        (tool.json()["task"]["key"], "mcp:cursor"),
        (script.json()["task"]["key"], "human:owner via nightly.sh"),
    ]
    project_owner = (await db.execute(text("SELECT created_by FROM projects"))).scalar_one()
    assert project_owner == "human:owner"


async def test_the_owner_is_the_configured_name(
    settings: BoardSettings, orchestrator: Orchestrator, commands: CommandTap, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("board:\n  owner: mz\n")
    named = BoardSettings.model_validate({**settings.model_dump(), "config": str(config)})
    async with (
        lifespan_app(create_app(named)) as asgi,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi), base_url=BOARD_URL, headers=AUTH_HEADERS
        ) as http,
    ):
        response = await http.post("/api/control/pause")
    assert response.status_code == 200, response.text
    assert commands.last().actor == "human:mz"


async def test_idea_is_forwarded_with_default_priority(
    client: httpx.AsyncClient, orchestrator: Orchestrator, commands: CommandTap, tmp_path: Path
) -> None:
    await new_project(client, tmp_path / "listsnap")
    response = await client.post("/api/projects/listsnap/ideas", json={"text": "Export lists as CSV"})
    assert response.status_code == 201
    assert response.json()["task"]["key"] == "T-001"
    assert COMMAND_ADAPTER.dump_python(commands.last(), mode="json") == {
        "schema_version": 1,
        "actor": "human:owner",
        "project": "listsnap",
        "type": "submit_idea",
        "text": "Export lists as CSV",
        "priority": 5,
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "expected", "status"),
    [
        (
            "POST",
            "/api/projects/listsnap/tasks/t-002/approve",
            None,
            Approve(project="listsnap", task_key="T-002"),
            404,
        ),
        (
            "POST",
            "/api/projects/listsnap/tasks/T-002/approve",
            {"note": "looks right"},
            Approve(project="listsnap", task_key="T-002", note="looks right"),
            404,
        ),
        (
            "POST",
            "/api/projects/listsnap/tasks/T-002/reject",
            {"reason": "split T-003 in two"},
            Reject(project="listsnap", task_key="T-002", reason="split T-003 in two"),
            404,
        ),
        (
            "PATCH",
            "/api/projects/listsnap/tasks/T-002",
            {"priority": 9, "blocked_by": ["t-001"]},
            EditTask(project="listsnap", task_key="T-002", priority=9, blocked_by=["T-001"]),
            404,
        ),
        (
            "POST",
            "/api/projects/listsnap/tasks/T-002/feedback",
            {"text": "use semicolons"},
            AddFeedback(project="listsnap", task_key="T-002", text="use semicolons"),
            404,
        ),
        (
            "POST",
            "/api/projects/listsnap/tasks/T-002/retry",
            None,
            RetryTask(project="listsnap", task_key="T-002"),
            404,
        ),
        (
            "POST",
            "/api/projects/listsnap/bugs/b-001/kill",
            {"reason": "duplicate"},
            KillBug(project="listsnap", bug_key="B-001", reason="duplicate"),
            404,
        ),
        (
            "POST",
            "/api/projects/listsnap/bugs/B-001/kill",
            None,
            KillBug(project="listsnap", bug_key="B-001"),
            404,
        ),
        ("POST", "/api/control/pause", None, Pause(), 200),
        ("POST", "/api/control/resume", None, Resume(), 200),
    ],
)
async def test_each_write_sends_its_command(
    client: httpx.AsyncClient,
    orchestrator: Orchestrator,
    commands: CommandTap,
    tmp_path: Path,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    expected: Any,
    status: int,
) -> None:
    """The route builds the command (seen on the wire); the real orchestrator answers it: listsnap has
    no T-002 and no B-001, so those are 404 naming what is missing."""
    await new_project(client, tmp_path / "listsnap")
    response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    if status == 404:
        assert response.json()["error"] == "not_found"
        assert ("T-002" if "tasks" in path else "B-001") in response.json()["message"]
    assert commands.last() == expected.model_copy(update={"actor": "human:owner"})


async def test_orchestrator_refusals_become_http_statuses(
    client: httpx.AsyncClient, orchestrator: Orchestrator, tmp_path: Path
) -> None:
    """The orchestrator's own refusals, each induced for real: a missing project (not_found), a task
    that is not at a gate (conflict), a project that exists already (conflict)."""
    missing = await client.post("/api/projects/nowhere/ideas", json={"text": "Export lists"})
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"] == "not_found"
    assert "nowhere" in missing.json()["message"]

    await new_project(client, tmp_path / "listsnap")
    again = await client.post(
        "/api/projects", json={"slug": "listsnap", "workspace": str(tmp_path / "other")}
    )
    assert again.status_code == 409
    assert again.json() == {"error": "conflict", "message": "project 'listsnap' already exists"}

    idea = (await client.post("/api/projects/listsnap/ideas", json={"text": "Export lists"})).json()
    key = idea["task"]["key"]
    early = await client.post(f"/api/projects/listsnap/tasks/{key}/approve")
    assert early.status_code == 409, early.text
    assert early.json()["error"] == "conflict"
    assert key in early.json()["message"]


async def test_no_orchestrator_is_503(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/control/pause")
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "unavailable"
    assert body["message"].startswith("the orchestrator is not answering")


async def test_silent_orchestrator_is_503_after_the_timeout(client: httpx.AsyncClient, nc: NATS) -> None:
    heard: list[bytes] = []

    async def swallow(msg: Msg) -> None:
        heard.append(msg.data)  # and never answer, like an orchestrator stuck in a long transaction

    await nc.subscribe("wf.cmd.>", cb=swallow)
    await nc.flush()
    response = await client.post("/api/control/resume")
    assert response.status_code == 503
    assert "the orchestrator is not answering" in response.json()["message"]
    assert heard  # the command was delivered: the 503 is the missing reply, not a missing listener


async def test_unreadable_reply_is_500_not_a_success(client: httpx.AsyncClient, nc: NATS) -> None:
    async def garbage(msg: Msg) -> None:
        await msg.respond(b"<html>oops</html>")

    await nc.subscribe("wf.cmd.>", cb=garbage)
    await nc.flush()
    response = await client.post("/api/control/pause")
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal",
        "message": "the orchestrator sent a reply to pause that is not a CommandReply",
    }


async def test_a_body_that_is_not_json_is_400_and_never_reaches_the_orchestrator(
    client: httpx.AsyncClient, orchestrator: Orchestrator, commands: CommandTap
) -> None:
    response = await client.post(
        "/api/projects/listsnap/ideas", content=b'{"text": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert response.json()["message"].startswith("the body is not valid JSON")
    assert commands.sent() == []


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "message"),
    [
        (
            "POST",
            "/api/projects/listsnap/ideas",
            {"json": {"text": "Export", "priority": 11}},
            "body.priority: Input should be less than or equal to 10",
        ),
        (
            "POST",
            "/api/projects/listsnap/ideas",
            {"json": {"text": "Export lists", "priorty": 3}},
            "body.priorty: Extra inputs are not permitted",
        ),
        ("POST", "/api/projects/listsnap/ideas", {"json": {}}, "body.text: Field required"),
        ("POST", "/api/projects/listsnap/ideas", {}, "body: Field required"),
        (
            "POST",
            "/api/projects/List_Snap/ideas",
            {"json": {"text": "Export lists"}},
            "path.slug: Value error, 'List_Snap' is not a valid project slug",
        ),
        (
            "POST",
            "/api/projects/listsnap/tasks/task-2/approve",
            {},
            "path.key: Value error, 'task-2' is not a valid task key",
        ),
        (
            "POST",
            "/api/projects/listsnap/tasks/T-002/reject",
            {"json": {"reason": ""}},
            "body.reason: String should have at least 1 character",
        ),
        (
            "PATCH",
            "/api/projects/listsnap/tasks/T-002",
            {"json": {"blocked_by": ["T-001", "later"]}},
            "body.blocked_by.1: Value error, 'later' is not a valid task key",
        ),
        (
            "PATCH",
            "/api/projects/listsnap/tasks/T-002",
            {"json": {}},
            "body: Value error, give at least one of",
        ),
        (
            "PATCH",
            "/api/projects/listsnap/tasks/T-002",
            {"json": {"title": "ab"}},
            "body.title: String should have at least 3 characters",
        ),
        (
            "POST",
            "/api/projects",
            {"json": {"slug": "x", "workspace": "relative/dir"}},
            "body.workspace: Value error, the workspace must be an absolute path",
        ),
        (
            "POST",
            "/api/projects/listsnap/bugs/T-001/kill",
            {},
            "path.key: Value error, 'T-001' is not a valid bug key",
        ),
        (
            "POST",
            "/api/control/pause",
            {"headers": {"X-WF-Actor": "x" * 101}},
            "header.X-WF-Actor: String should have at most 100 characters",
        ),
        (
            "POST",
            "/api/control/pause",
            {"headers": {"X-WF-Actor": "agent:deploy"}},
            "header.X-WF-Actor: the actor is who authenticated",
        ),
        (
            "POST",
            "/api/control/pause",
            {"headers": {"X-WF-Client": "x" * 56}},
            "header.X-WF-Client: String should have at most 55 characters",
        ),
    ],
)
async def test_invalid_requests_are_422_naming_the_field_and_never_reach_the_orchestrator(
    client: httpx.AsyncClient,
    orchestrator: Orchestrator,
    commands: CommandTap,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    response = await client.request(method, path, **kwargs)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid"
    assert body["message"].startswith(message), body["message"]
    assert body["fields"][0]["field"] == message.split(":")[0]
    assert commands.sent() == []
