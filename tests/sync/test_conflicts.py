"""Both sides changing the same task: per-field merge, newest wins with an audit row and a note, the
pipeline's refusals win over a tracker, and a restart of the bridge process loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from wf_cli.embedded import NatsServer
from wf_common.db.sync_tables import audit, links

from tests.orchestrator.hub import Hub, eventually
from tests.sync import views
from tests.sync.conftest import Fakes
from tests.sync.test_end_to_end import TASK, until


async def _task_in_backlog(hub: Hub) -> None:
    await hub.cmd("submit_idea", project="demo", text="Conflict idea")
    pm = await hub.next_job("pm")
    await hub.breakdown(pm, TASK)
    await hub.wait_state("T-001", "pm", "awaiting_approval")


async def test_both_sides_edit_the_title_the_newer_wins_and_the_other_is_kept_in_the_audit(
    hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any], database_url: str
) -> None:
    github = fakes.targets()[2]
    bridge = await make_bridge([github])
    await _task_in_backlog(hub)
    await until(lambda: len(views.github_items(fakes.github, "T-002")) == 1, "T-002 in GitHub")
    await until(lambda: views.stages(fakes, "T-002")[2] == "backlog", "T-002 labelled backlog")
    await bridge.stop()

    # While the bridge is down: a human edits title and priority in GitHub, then the title here (newer;
    # GitHub's timestamps have whole seconds, so the later local edit is never older than it).
    [issue] = views.github_items(fakes.github, "T-002")
    body = issue["body"].replace("Priority: 5", "Priority: 2")
    fakes.github.human_update(issue["number"], title="Remote title", body=body)
    await hub.cmd("edit_task", project="demo", task_key="T-002", title="Local title")

    await make_bridge([github])

    async def merged() -> dict[str, Any] | None:
        t = await hub.task("T-002")
        return t if (t["title"], t["priority"]) == ("Local title", 2) else None

    await eventually(merged, within=20, what="the local title and the remote priority locally")
    await until(
        lambda: fakes.github.issue(issue["number"])["title"] == "Local title", "the local title in GitHub"
    )
    # The note is posted once the audit row is committed.
    await until(lambda: fakes.github.comments.get(issue["number"]), "the conflict note in GitHub")
    db = create_async_engine(database_url)
    try:
        async with db.connect() as conn:
            rows = (
                await conn.execute(select(audit.c.field, audit.c.winner, audit.c.kept, audit.c.discarded))
            ).all()
    finally:
        await db.dispose()
    assert [tuple(r) for r in rows] == [("title", "local", "Local title", "Remote title")]
    notes = [c["body"] for c in fakes.github.comments.get(issue["number"], [])]
    assert any("Sync conflict on title" in n and "Remote title" in n for n in notes)
    assert "Priority: 2" in fakes.github.issue(issue["number"])["body"]


async def test_a_move_back_made_in_a_tracker_moves_the_task_here_through_move_task(
    hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any]
) -> None:
    await make_bridge([fakes.targets()[0]])
    await _task_in_backlog(hub)
    await hub.cmd("approve", project="demo", task_key="T-001")
    dev = await hub.next_job("dev")
    # Paused, the task waits queued in QA after DEV passes (a running task cannot be moved).
    await hub.cmd("pause", project="demo")
    await hub.finish(dev)
    await hub.wait_state("T-002", "qa", "queued")
    await until(lambda: views.stages(fakes, "T-002")[0] == "qa", "T-002 in Asana's QA section")
    [task] = views.asana_items(fakes.asana, "T-002")

    fakes.asana.human_move(task["gid"], "dev")  # a human sends it back for rework

    moved = await hub.wait_state("T-002", "dev", "queued", within=20)
    assert moved["current_stage"] == "dev"
    [back] = [h for h in await hub.handoffs("T-002") if h["notes"] == "moved back by hand"]
    assert (back["from_stage"], back["to_stage"]) == ("qa", "dev")
    moves = [e for e in hub.events_of("task.moved", "T-002") if e.actor == "sync:asana"]
    assert [(e.from_stage, e.to_stage) for e in moves] == [("qa", "dev")]
    assert fakes.asana.section_of(task["gid"]) == "dev"
    assert not any("did not take" in c["text"] for c in fakes.asana.comments(task["gid"]))


async def test_a_move_the_pipeline_refuses_snaps_back_in_the_tracker_with_the_reason(
    hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any]
) -> None:
    await make_bridge([fakes.targets()[0]])
    await _task_in_backlog(hub)
    await until(lambda: views.stages(fakes, "T-002")[0] == "backlog", "T-002 in Asana's backlog")
    [task] = views.asana_items(fakes.asana, "T-002")
    fakes.asana.human_move(task["gid"], "done")  # a draft straight to done: move_task refuses it

    def refusal_noted() -> bool:
        return any("did not take the change of stage" in c["text"] for c in fakes.asana.comments(task["gid"]))

    await until(refusal_noted, "the refusal's reason on the Asana task")
    await until(lambda: fakes.asana.section_of(task["gid"]) == "backlog", "the card back in backlog")
    assert (await hub.task("T-002"))["current_stage"] == "backlog"


async def test_the_bridge_killed_mid_create_and_restarted_makes_no_duplicate(
    hub: Hub, fakes: Fakes, nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"task_backend": {"sync_to": [fakes.targets()[2]]}}))
    env = {
        **os.environ,
        "WF_CONFIG": str(config),
        "WF_NATS_URL": nats_server.url,
        "WF_DATABASE_URL": database_url,
    }

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "wf_sync_bridge"], env=env)

    # GitHub makes the issue but holds the answer; the bridge is killed while it waits.
    fakes.github.fail("POST /repos/acme/app/issues$", stall_after=30)
    proc = spawn()
    try:
        await hub.cmd("submit_idea", project="demo", text="Crash idea")
        await until(
            lambda: fakes.github.calls("POST /repos/acme/app/issues$"), "the create request", within=30
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert len(views.github_items(fakes.github, "T-001")) == 1
        proc = spawn()
        db = create_async_engine(database_url)
        try:

            async def linked() -> int:
                async with db.connect() as conn:
                    return len((await conn.execute(select(links).where(links.c.unlinked_at.is_(None)))).all())

            assert await eventually(linked, within=30, what="the restarted bridge to link the issue") == 1
        finally:
            await db.dispose()
        assert views.counts(fakes, "T-001")[2] == 1
        assert len(fakes.github.calls("POST /repos/acme/app/issues$")) == 1
    finally:
        proc.terminate()
        proc.wait(10)
