"""Writes: each is forwarded to the orchestrator as its wf_common command, with who issued it, and
the orchestrator's answer comes back as HTTP (data on success, its error code as a status)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from wf_common.commands import (
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

from tests.board.conftest import FakeOrchestrator


async def test_create_project_is_forwarded_and_returns_201_with_the_reply(
    client: httpx.AsyncClient, orchestrator: FakeOrchestrator
) -> None:
    orchestrator.reply_with("create_project", {"slug": "listsnap", "name": "ListSnap"})
    response = await client.post(
        "/api/projects",
        json={"slug": "listsnap", "name": "ListSnap", "workspace": "/work/listsnap"},
        headers={"X-WF-Actor": "mz"},
    )
    assert response.status_code == 201
    assert response.json() == {"slug": "listsnap", "name": "ListSnap"}
    command = orchestrator.last()
    assert isinstance(command, CreateProject)
    assert (command.slug, command.name, command.workspace, command.test_command) == (
        "listsnap",
        "ListSnap",
        "/work/listsnap",
        None,
    )
    assert command.actor == "mz"


async def test_idea_is_forwarded_with_default_priority_and_actor(
    client: httpx.AsyncClient, orchestrator: FakeOrchestrator
) -> None:
    orchestrator.reply_with("submit_idea", {"key": "T-001"})
    response = await client.post("/api/projects/listsnap/ideas", json={"text": "Export lists as CSV"})
    assert response.status_code == 201
    assert response.json() == {"key": "T-001"}
    assert orchestrator.raw[-1] == {
        "schema_version": 1,
        "actor": "human",  # no X-WF-Actor header
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
            200,
        ),
        (
            "POST",
            "/api/projects/listsnap/tasks/T-002/approve",
            {"note": "looks right"},
            Approve(project="listsnap", task_key="T-002", note="looks right"),
            200,
        ),
        (
            "POST",
            "/api/projects/listsnap/tasks/T-002/reject",
            {"reason": "split T-003 in two"},
            Reject(project="listsnap", task_key="T-002", reason="split T-003 in two"),
            200,
        ),
        (
            "PATCH",
            "/api/projects/listsnap/tasks/T-002",
            {"priority": 9, "blocked_by": ["t-001"]},
            EditTask(project="listsnap", task_key="T-002", priority=9, blocked_by=["T-001"]),
            200,
        ),
        (
            "POST",
            "/api/projects/listsnap/tasks/T-002/feedback",
            {"text": "use semicolons"},
            AddFeedback(project="listsnap", task_key="T-002", text="use semicolons"),
            201,
        ),
        (
            "POST",
            "/api/projects/listsnap/tasks/T-002/retry",
            None,
            RetryTask(project="listsnap", task_key="T-002"),
            200,
        ),
        (
            "POST",
            "/api/projects/listsnap/bugs/b-001/kill",
            {"reason": "duplicate"},
            KillBug(project="listsnap", bug_key="B-001", reason="duplicate"),
            200,
        ),
        (
            "POST",
            "/api/projects/listsnap/bugs/B-001/kill",
            None,
            KillBug(project="listsnap", bug_key="B-001"),
            200,
        ),
        ("POST", "/api/control/pause", None, Pause(), 200),
        ("POST", "/api/control/resume", None, Resume(), 200),
    ],
)
async def test_each_write_sends_its_command(
    client: httpx.AsyncClient,
    orchestrator: FakeOrchestrator,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    expected: Any,
    status: int,
) -> None:
    response = await client.request(method, path, json=body, headers={"X-WF-Actor": "agent:pm"})
    assert response.status_code == status, response.text
    assert response.json() == {"type": expected.type}
    sent = orchestrator.last()
    assert sent == expected.model_copy(update={"actor": "agent:pm"})


@pytest.mark.parametrize(
    ("code", "status"),
    [("invalid", 422), ("not_found", 404), ("conflict", 409), ("unavailable", 503), ("internal", 500)],
)
async def test_orchestrator_error_codes_become_http_statuses(
    client: httpx.AsyncClient, orchestrator: FakeOrchestrator, code: Any, status: int
) -> None:
    orchestrator.fail_with("approve", code, "T-002 is not waiting for approval (it is running in dev)")
    response = await client.post("/api/projects/listsnap/tasks/T-002/approve")
    assert response.status_code == status
    assert response.json() == {
        "error": code,
        "message": "T-002 is not waiting for approval (it is running in dev)",
    }


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

    await nc.subscribe("wf.cmd.*", cb=swallow)
    await nc.flush()
    began = asyncio.get_running_loop().time()
    response = await client.post("/api/control/resume")
    assert response.status_code == 503
    assert "the orchestrator is not answering" in response.json()["message"]
    assert heard
    assert asyncio.get_running_loop().time() - began >= 1.5


async def test_unreadable_reply_is_500_not_a_success(client: httpx.AsyncClient, nc: NATS) -> None:
    async def garbage(msg: Msg) -> None:
        await msg.respond(b"<html>oops</html>")

    await nc.subscribe("wf.cmd.*", cb=garbage)
    await nc.flush()
    response = await client.post("/api/control/pause")
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal",
        "message": "the orchestrator sent a reply to pause that is not a CommandReply",
    }


async def test_a_body_that_is_not_json_is_400_and_never_reaches_the_orchestrator(
    client: httpx.AsyncClient, orchestrator: FakeOrchestrator
) -> None:
    response = await client.post(
        "/api/projects/listsnap/ideas", content=b'{"text": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert response.json()["message"].startswith("the body is not valid JSON")
    assert orchestrator.received == []


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
    ],
)
async def test_invalid_requests_are_422_naming_the_field_and_never_reach_the_orchestrator(
    client: httpx.AsyncClient,
    orchestrator: FakeOrchestrator,
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
    assert orchestrator.received == []
