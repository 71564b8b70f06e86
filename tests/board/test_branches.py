"""Pause scopes and pending pushes in /api/control; pause, resume, rollback and checkpoints of a
project or task forwarded as commands."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from nats.js import JetStreamContext
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.commands import ListCheckpoints, Pause, Resume, Rollback
from wf_common.db.tables import pending_pushes
from wf_common.subjects import CONTROL_BUCKET
from wf_orchestrator.app import Orchestrator

from tests.board import rows
from tests.board.conftest import CommandTap, new_project


async def test_control_shows_which_pauses_are_in_effect_and_pending_pushes(
    client: httpx.AsyncClient, js: JetStreamContext, db: AsyncConnection
) -> None:
    kv = await js.key_value(CONTROL_BUCKET)
    await kv.put("paused.project.listsnap", b"true")
    await kv.put("paused.task.calc.T-002", b"true")
    await kv.put("paused.task.calc.T-003", b"false")  # resumed
    pid = await rows.project(db, "listsnap")
    await db.execute(
        insert(pending_pushes).values(
            project_id=pid,
            remote="origin",
            branch="main",
            attempts=2,
            next_attempt_at=datetime(2026, 1, 1, tzinfo=UTC),
            last_error="could not read from remote repository",
        )
    )
    await db.commit()

    body = (await client.get("/api/control")).json()

    assert body["paused"] is False
    assert body["paused_projects"] == ["listsnap"]
    assert body["paused_tasks"] == [{"project": "calc", "key": "T-002"}]
    [push] = body["pending_pushes"]
    assert (push["project"], push["remote"], push["branch"], push["attempts"]) == (
        "listsnap",
        "origin",
        "main",
        2,
    )
    assert push["last_error"] == "could not read from remote repository"


async def test_pause_resume_rollback_and_checkpoints_are_forwarded(
    client: httpx.AsyncClient, orchestrator: Orchestrator, commands: CommandTap, tmp_path: Path
) -> None:
    await new_project(client, tmp_path / "listsnap")
    await client.post("/api/projects/listsnap/ideas", json={"text": "Export lists as CSV"})

    assert (await client.post("/api/projects/listsnap/pause")).status_code == 200
    sent = commands.last()
    assert isinstance(sent, Pause)
    assert (sent.project, sent.task_key) == ("listsnap", None)
    assert (await client.get("/api/control")).json()["paused_projects"] == ["listsnap"]

    assert (await client.post("/api/projects/listsnap/resume")).status_code == 200
    assert (await client.get("/api/control")).json()["paused_projects"] == []

    assert (await client.post("/api/projects/listsnap/tasks/t-001/pause")).status_code == 200
    resumed = await client.post("/api/projects/listsnap/tasks/t-001/resume")
    assert resumed.status_code == 200, resumed.text
    sent = commands.last()
    assert isinstance(sent, Resume)
    assert (sent.project, sent.task_key) == ("listsnap", "T-001")

    r = await client.post("/api/projects/listsnap/tasks/T-001/rollback", json={"to_stage": "dev"})
    assert r.status_code == 409, r.text
    assert r.json()["message"] == "T-001 is an idea; it has no branch to roll back"
    sent = commands.last()
    assert isinstance(sent, Rollback)
    assert sent.to_stage == "dev"

    r = await client.get("/api/projects/listsnap/tasks/T-001/checkpoints")
    assert r.status_code == 200, r.text
    assert r.json() == {"task_key": "T-001", "checkpoints": []}
    assert isinstance(commands.last(), ListCheckpoints)


async def test_a_rollback_without_a_stage_is_refused_naming_the_field(
    client: httpx.AsyncClient, orchestrator: Orchestrator, commands: CommandTap
) -> None:
    r = await client.post("/api/projects/listsnap/tasks/T-002/rollback", json={})
    assert r.status_code == 422
    assert "to_stage" in r.text
    assert commands.sent() == []
