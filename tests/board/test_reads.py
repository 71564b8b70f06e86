"""Reads: what the board API returns is what the orchestrator wrote to the database."""

from __future__ import annotations

import httpx
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.db.tables import projects, tasks

from tests.board import rows
from tests.board.rows import T0


async def test_projects_are_listed_and_shown_with_counts(
    client: httpx.AsyncClient, db: AsyncConnection
) -> None:
    listsnap = await rows.project(db, "listsnap", name="ListSnap")
    await rows.project(db, "alpha")
    t1 = await rows.task(db, listsnap, "T-001", current_stage="dev", state="running")
    await rows.task(db, listsnap, "T-002", current_stage="dev", state="queued")
    await rows.task(db, listsnap, "T-003", current_stage="qa", state="queued")
    await rows.bug(db, listsnap, t1, "B-001")
    await rows.bug(db, listsnap, t1, "B-002", status="killed")

    listed = (await client.get("/api/projects")).json()
    assert [p["slug"] for p in listed] == ["alpha", "listsnap"]
    assert listed[1]["name"] == "ListSnap"
    assert listed[1]["workspace"] == "/work/listsnap"

    shown = await client.get("/api/projects/listsnap")
    assert shown.status_code == 200
    body = shown.json()
    assert body["tasks_by_stage"] == {"dev": 2, "qa": 1}
    assert body["tasks_by_state"] == {"queued": 2, "running": 1}
    assert body["open_bugs"] == 1


async def test_unknown_project_is_404_naming_it(client: httpx.AsyncClient, db: AsyncConnection) -> None:
    for path in (
        "/api/projects/nope",
        "/api/tasks?project=nope",
        "/api/board?project=nope",
        "/api/bugs?project=nope",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
        assert "'nope'" in response.json()["message"]


async def test_tasks_are_snapshots_with_keys_not_ids(client: httpx.AsyncClient, db: AsyncConnection) -> None:
    pid = await rows.project(db, "listsnap")
    idea = await rows.task(db, pid, "T-001", current_stage="pm", state="waiting_subtasks", created_by="human")
    t2 = await rows.task(db, pid, "T-002", parent_id=idea, created_by="pm")
    await rows.task(
        db,
        pid,
        "T-003",
        title="Export as CSV",
        description="<script>alert(1)</script>",
        acceptance_criteria=["a CSV downloads", "headers are included"],
        current_stage="dev",
        state="blocked",
        priority=8,
        blocked_by=[t2],
        parent_id=idea,
        rework_count=2,
        created_by="pm",
        status_reason="waiting for T-002",
        updated_at=T0,
    )

    response = await client.get("/api/tasks", params={"project": "listsnap"})
    assert response.status_code == 200
    by_key = {t["key"]: t for t in response.json()}
    assert list(by_key) == ["T-001", "T-002", "T-003"]
    assert by_key["T-003"] == {
        "project": "listsnap",
        "key": "T-003",
        "title": "Export as CSV",
        # Model-written text comes back as data, untouched: the UI escapes it.
        "description": "<script>alert(1)</script>",
        "acceptance_criteria": ["a CSV downloads", "headers are included"],
        "stage": "dev",
        "state": "blocked",
        "priority": 8,
        "blocked_by": ["T-002"],
        "parent": "T-001",
        "rework_count": 2,
        "created_by": "pm",
        "status_reason": "waiting for T-002",
        "updated_at": "2025-03-01T12:00:00Z",
    }
    assert response.headers["content-type"] == "application/json"


async def test_tasks_filter_by_stage_state_and_key(client: httpx.AsyncClient, db: AsyncConnection) -> None:
    a = await rows.project(db, "alpha")
    b = await rows.project(db, "beta")
    await rows.task(db, a, "T-001", current_stage="dev", state="running")
    await rows.task(db, a, "T-002", current_stage="qa", state="queued")
    await rows.task(db, b, "T-001", current_stage="dev", state="queued")
    await rows.task(db, b, "T-002", current_stage="done", state="done")

    async def keys(**params: str) -> list[tuple[str, str]]:
        response = await client.get("/api/tasks", params=params)
        assert response.status_code == 200, response.text
        return [(t["project"], t["key"]) for t in response.json()]

    assert await keys(stage="dev") == [("alpha", "T-001"), ("beta", "T-001")]
    assert await keys(state="queued") == [("alpha", "T-002"), ("beta", "T-001")]
    assert await keys(project="beta", stage="dev") == [("beta", "T-001")]
    # A client holding only a key finds its project(s); lower case works like in commands.
    assert await keys(key="t-002") == [("alpha", "T-002"), ("beta", "T-002")]
    assert await keys(key="T-404") == []


async def test_bad_filters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, db: AsyncConnection
) -> None:
    response = await client.get("/api/tasks", params={"state": "sleeping"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid"
    assert body["message"].startswith("query.state: Input should be 'draft'")
    assert body["fields"][0]["field"] == "query.state"

    response = await client.get("/api/tasks", params={"stage": "review"})
    assert response.status_code == 422
    assert response.json()["message"].startswith("query.stage: unknown stage 'review'")
    assert "'dev'" in response.json()["message"]


async def test_board_has_every_column_in_pipeline_order(
    client: httpx.AsyncClient, db: AsyncConnection
) -> None:
    pid = await rows.project(db, "listsnap")
    other = await rows.project(db, "other")
    await rows.task(db, pid, "T-001", current_stage="backlog", state="queued")
    await rows.task(db, pid, "T-002", current_stage="dev", state="running")
    await rows.task(db, pid, "T-003", current_stage="dev", state="queued")
    await rows.task(db, pid, "T-004", current_stage="done", state="done")
    await rows.task(db, other, "T-001", current_stage="qa", state="queued")

    response = await client.get("/api/board", params={"project": "listsnap"})
    assert response.status_code == 200
    board = response.json()
    assert board["paused"] is False
    assert board["stages"] == ["backlog", "pm", "dev", "qa", "sec", "docs", "deploy", "testing", "done"]
    assert list(board["columns"]) == board["stages"]
    assert [t["key"] for t in board["columns"]["dev"]] == ["T-002", "T-003"]
    assert [t["key"] for t in board["columns"]["backlog"]] == ["T-001"]
    assert [t["key"] for t in board["columns"]["done"]] == ["T-004"]
    assert board["columns"]["qa"] == []

    everything = (await client.get("/api/board")).json()
    assert [(t["project"], t["key"]) for t in everything["columns"]["qa"]] == [("other", "T-001")]


async def test_board_cards_are_the_task_snapshots_of_api_tasks(
    client: httpx.AsyncClient, db: AsyncConnection
) -> None:
    # The board's JSON is built by PostgreSQL (wf_board_api.board.repository); /api/tasks builds the
    # same TaskSnapshot in Python. Every field, escaping and the datetime encoding must agree.
    pid = await rows.project(db, "listsnap")
    idea = await rows.task(db, pid, "T-001", current_stage="pm", state="waiting_subtasks", updated_at=T0)
    t2 = await rows.task(db, pid, "T-002", current_stage="done", state="done")
    t3 = await rows.task(
        db,
        pid,
        "T-003",
        title='Ünïcode "quotes" \\ and a\nnewline',
        description="<script>alert(1)</script>",
        acceptance_criteria=["a CSV downloads", "tab\there"],
        blocked_by=[t2, idea],
        parent_id=idea,
        rework_count=2,
        created_by="pm",
        status_reason="waiting",
        updated_at=T0.replace(microsecond=120000),
    )
    await rows.task(db, pid, "T-004", current_stage="review", blocked_by=[t3])  # a stage no longer configured
    await rows.task(db, pid, "T-005", current_stage="dev", acceptance_criteria=[])

    board = (await client.get("/api/board", params={"project": "listsnap"})).json()
    tasks = (await client.get("/api/tasks", params={"project": "listsnap"})).json()
    assert [t for s in board["stages"] for t in board["columns"][s]] == sorted(
        tasks, key=lambda t: (board["stages"].index(t["stage"]), t["key"])
    )
    assert board["stages"][-2:] == ["done", "review"]
    card = board["columns"]["dev"][0]
    assert card["blocked_by"] == ["T-002", "T-001"]
    assert card["updated_at"] == "2025-03-01T12:00:00.120000Z"
    assert board["columns"]["pm"][0]["updated_at"] == "2025-03-01T12:00:00Z"


async def test_an_unchanged_board_answers_304_and_any_write_shows_on_the_next_read(
    client: httpx.AsyncClient, db: AsyncConnection
) -> None:
    # The board is built again only when a row it shows changed (wf_board_api.board.service); every
    # way a row can change, written straight to the database here, must show on the next read.
    pid = await rows.project(db, "listsnap")
    t1 = await rows.task(db, pid, "T-001", current_stage="dev", state="queued")
    t2 = await rows.task(db, pid, "T-002", current_stage="qa", state="queued")
    first = await client.get("/api/board", params={"project": "listsnap"})
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = await client.get("/api/board", params={"project": "listsnap"}, headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    assert (await client.get("/api/board", params={"project": "listsnap"})).content == first.content

    def keys(response: httpx.Response, stage: str) -> list[str]:
        return [t["key"] for t in response.json()["columns"][stage]]

    await db.execute(update(tasks).where(tasks.c.id == t1).values(current_stage="sec"))
    moved = await client.get("/api/board", params={"project": "listsnap"}, headers={"If-None-Match": etag})
    assert moved.status_code == 200
    assert moved.headers["etag"] != etag
    assert (keys(moved, "dev"), keys(moved, "sec")) == ([], ["T-001"])
    await db.execute(update(tasks).where(tasks.c.id == t2).values(title="Renamed"))
    renamed = (await client.get("/api/board", params={"project": "listsnap"})).json()
    assert renamed["columns"]["qa"][0]["title"] == "Renamed"
    await db.execute(delete(tasks).where(tasks.c.id == t2))
    assert keys(await client.get("/api/board", params={"project": "listsnap"}), "qa") == []
    await rows.task(db, pid, "T-003", current_stage="qa", state="queued")
    assert keys(await client.get("/api/board", params={"project": "listsnap"}), "qa") == ["T-003"]
    await db.execute(update(projects).where(projects.c.id == pid).values(slug="renamed"))
    everything = (await client.get("/api/board")).json()
    assert {t["project"] for s in everything["stages"] for t in everything["columns"][s]} == {"renamed"}


async def test_task_detail_has_history_bugs_feedback_children_and_cost(
    client: httpx.AsyncClient, db: AsyncConnection
) -> None:
    pid = await rows.project(db, "listsnap")
    idea = await rows.task(db, pid, "T-001", current_stage="pm", state="waiting_subtasks")
    tid = await rows.task(db, pid, "T-002", current_stage="qa", state="running", parent_id=idea)
    await rows.task(db, pid, "T-003", parent_id=tid)
    dev = await rows.agent(db, "dev")
    qa = await rows.agent(db, "qa")
    e1 = await rows.execution(
        db,
        tid,
        dev,
        "dev",
        1,
        status="completed",
        result_status="pass",
        result_summary="implemented export",
        result_details={"commits": ["abc123"]},
        usage={"model": "qwen2.5-coder:7b", "llm_calls": 3, "prompt_tokens": 1000, "completion_tokens": 200},
        runner_id="runner-1",
        started_at=T0,
        completed_at=T0,
    )
    await rows.execution(
        db,
        tid,
        qa,
        "qa",
        1,
        status="running",
        usage={"model": "llama3.2:3b", "llm_calls": 1, "prompt_tokens": 500, "completion_tokens": 50},
    )
    await rows.execution(db, tid, qa, "qa", 2, status="pending")  # no usage yet
    await rows.handoff(
        db,
        tid,
        "dev",
        "qa",
        payload={"files_changed": ["export.py"]},
        notes="ready for QA",
        actor="dev",
        from_execution_id=e1,
    )
    await rows.handoff(
        db, tid, "pm", "dev", requires_approval=True, approved_at=T0, approved_by="mz", decision_note="ok"
    )
    await rows.bug(db, pid, tid, "B-001", title="CSV has no header", reproduction={"test": "test_header"})
    await rows.bug(db, pid, tid, "B-002", status="killed", killed_at=T0, killed_by="mz", kill_reason="dup")
    await rows.note(db, tid, "use semicolons", actor="mz")
    log_id = await rows.attachment(db, pid, b"FAILED test_header", task_id=tid, filename="qa.log")

    response = await client.get("/api/projects/listsnap/tasks/t-002")
    assert response.status_code == 200
    detail = response.json()
    assert detail["key"] == "T-002"
    assert detail["parent"] == "T-001"
    assert detail["stage"] == "qa"
    assert detail["children"] == ["T-003"]
    assert [(h["from_stage"], h["to_stage"]) for h in detail["handoffs"]] == [("dev", "qa"), ("pm", "dev")]
    assert detail["handoffs"][0]["payload"] == {"files_changed": ["export.py"]}
    assert detail["handoffs"][0]["notes"] == "ready for QA"
    assert detail["handoffs"][1]["approved_by"] == "mz"
    assert detail["handoffs"][1]["requires_approval"] is True
    assert [(e["stage"], e["attempt"], e["status"], e["role"]) for e in detail["executions"]] == [
        ("dev", 1, "completed", "dev"),
        ("qa", 1, "running", "qa"),
        ("qa", 2, "pending", "qa"),
    ]
    assert detail["executions"][0]["result_summary"] == "implemented export"
    assert detail["executions"][0]["result_details"] == {"commits": ["abc123"]}
    assert detail["executions"][0]["runner_id"] == "runner-1"
    # Killed bugs stay visible on the task, marked as such.
    assert [(b["key"], b["status"]) for b in detail["bugs"]] == [("B-001", "open"), ("B-002", "killed")]
    assert detail["bugs"][0]["reproduction"] == {"test": "test_header"}
    assert detail["bugs"][1]["kill_reason"] == "dup"
    assert [(f["text"], f["actor"]) for f in detail["feedback"]] == [("use semicolons", "mz")]
    assert detail["attachments"] == [
        {
            "id": log_id,
            "filename": "qa.log",
            "content_type": "application/octet-stream",
            "size": 18,
            "bug_key": None,
            "created_by": "system",
            "created_at": detail["attachments"][0]["created_at"],
            "url": f"/api/attachments/{log_id}",
        }
    ]
    assert detail["cost"] == {
        "executions": 3,
        "llm_calls": 4,
        "prompt_tokens": 1500,
        "completion_tokens": 250,
        "total_tokens": 1750,
        "duration_ms": 0.0,
        "models": ["qwen2.5-coder:7b", "llama3.2:3b"],
        "cost_usd": 0.0,
    }

    executions = await client.get("/api/projects/listsnap/tasks/T-002/executions")
    assert [e["id"] for e in executions.json()] == [e["id"] for e in detail["executions"]]


async def test_unknown_task_is_404_naming_task_and_project(
    client: httpx.AsyncClient, db: AsyncConnection
) -> None:
    await rows.project(db, "listsnap")
    for path in ("/api/projects/listsnap/tasks/T-009", "/api/projects/listsnap/tasks/T-009/executions"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json() == {
            "error": "not_found",
            "message": "task 'T-009' not found in project 'listsnap'",
        }


async def test_bugs_hide_killed_ones_unless_asked(client: httpx.AsyncClient, db: AsyncConnection) -> None:
    a = await rows.project(db, "alpha")
    b = await rows.project(db, "beta")
    ta = await rows.task(db, a, "T-001")
    ta2 = await rows.task(db, a, "T-002")
    tb = await rows.task(db, b, "T-001")
    await rows.bug(db, a, ta, "B-001")
    await rows.bug(db, a, ta, "B-002", status="killed")
    await rows.bug(db, a, ta2, "B-003", status="fixed", fixed_at=T0)
    await rows.bug(db, b, tb, "B-001")

    async def keys(**params: str) -> list[tuple[str, str, str]]:
        response = await client.get("/api/bugs", params=params)
        assert response.status_code == 200
        return [(x["project"], x["task_key"], x["key"]) for x in response.json()]

    assert await keys() == [
        ("alpha", "T-001", "B-001"),
        ("alpha", "T-002", "B-003"),
        ("beta", "T-001", "B-001"),
    ]
    assert await keys(project="alpha", task="T-001") == [("alpha", "T-001", "B-001")]
    assert await keys(project="alpha", task="T-001", include_killed="true") == [
        ("alpha", "T-001", "B-001"),
        ("alpha", "T-001", "B-002"),
    ]
    response = await client.get("/api/bugs", params={"include_killed": "maybe"})
    assert response.status_code == 422
    assert response.json()["message"].startswith("query.include_killed:")


async def test_attachment_downloads_safely(client: httpx.AsyncClient, db: AsyncConnection) -> None:
    pid = await rows.project(db, "listsnap")
    tid = await rows.task(db, pid, "T-001")
    html = await rows.attachment(
        db,
        pid,
        b"<html><script>alert(1)</script></html>",
        task_id=tid,
        filename='../../etc/"report"\r\nX-Evil: 1.html',
        content_type="text/html",
    )
    text = await rows.attachment(
        db, pid, "résumé".encode(), task_id=tid, filename="résumé.txt", content_type="text/plain"
    )

    response = await client.get(f"/api/attachments/{html}")
    assert response.status_code == 200
    assert response.content == b"<html><script>alert(1)</script></html>"
    # Never rendered as a page: a download, of a type the browser will not run, and no sniffing.
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert "/" not in disposition.split("filename*=")[0]
    assert "\r" not in disposition
    assert "X-Evil" not in response.headers
    assert "sandbox" in response.headers["content-security-policy"]

    response = await client.get(f"/api/attachments/{text}")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
    )
    assert response.content.decode() == "résumé"

    missing = await client.get("/api/attachments/999")
    assert missing.status_code == 404
    assert missing.json()["message"] == "attachment 999 not found"
    bad = await client.get("/api/attachments/abc")
    assert bad.status_code == 422
    assert bad.json()["message"].startswith("path.attachment_id:")


async def test_unknown_route_has_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "Not Found"}


async def test_every_response_forbids_sniffing_and_framing(
    client: httpx.AsyncClient, db: AsyncConnection
) -> None:
    for path in ("/api/projects", "/api/projects/nope"):
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
