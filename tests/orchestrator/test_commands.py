"""Commands as the CLI and the board send them: replies, refusals with a clear code, and their effects."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.orchestrator.hub import CommandFailed, Hub

STEP = {"description": "d", "acceptance_criteria": ["ok"], "priority": 5}


async def to_breakdown_gate(hub: Hub, *titles: str) -> None:
    await hub.cmd("submit_idea", project="demo", text="An idea")
    await hub.breakdown(await hub.next_job("pm"), *[{"title": t, **STEP} for t in titles])
    await hub.wait_state("T-001", "pm", "awaiting_approval")


async def refused(hub: Hub, kind: str, **fields: object) -> CommandFailed:
    with pytest.raises(CommandFailed) as err:
        await hub.cmd(kind, **fields)
    return err.value


async def test_create_project_makes_a_git_workspace(hub: Hub, tmp_path: Path) -> None:
    data = await hub.project("calc", tmp_path / "new" / "calc", name="Calculator")
    ws = tmp_path / "new" / "calc"
    assert data["project"] == {
        "slug": "calc",
        "name": "Calculator",
        "workspace": str(ws),
        "test_command": "python -m pytest",
    }
    assert (ws / ".git").is_dir()
    assert (ws / ".workflow" / ".gitignore").read_text() == "agent_logs/\ncheckpoints/\nworktrees/\n"
    git = await asyncio.create_subprocess_exec(
        "git", "-C", str(ws), "log", "--name-only", "--format=%s", stdout=asyncio.subprocess.PIPE
    )
    log = (await git.communicate())[0].decode()
    assert ".workflow/.gitignore" in log
    err = await refused(hub, "create_project", slug="calc", workspace=str(tmp_path / "x"))
    assert err.code == "conflict"
    assert "already exists" in err.message
    assert [e.snapshot.slug for e in hub.events_of("project.created")] == ["demo", "calc"]


async def test_refusals_carry_a_code_and_say_why(hub: Hub) -> None:
    await hub.cmd("submit_idea", project="demo", text="An idea")
    await hub.next_job("pm")
    err = await refused(hub, "approve", project="demo", task_key="T-001")
    assert (err.code, err.message) == ("conflict", "T-001 is not waiting for approval (it is running in pm)")
    err = await refused(hub, "retry_task", project="demo", task_key="T-001")
    assert err.code == "conflict"
    assert "only failed or needs_human" in err.message
    err = await refused(hub, "submit_idea", project="nope", text="An idea")
    assert err.code == "not_found"
    assert "nope" in err.message
    err = await refused(hub, "approve", project="demo", task_key="T-042")
    assert err.code == "not_found"
    assert "T-042" in err.message
    err = await refused(hub, "kill_bug", project="demo", bug_key="B-001")
    assert err.code == "not_found"

    # Malformed requests name the field (sent raw, as a client with an older schema would).
    assert hub.nc is not None
    raw = await hub.nc.request(
        "wf.cmd.submit_idea", b'{"project": "demo", "text": "An idea", "priority": 11}'
    )
    assert b'"code":"invalid"' in raw.data
    assert b"priority" in raw.data
    raw = await hub.nc.request("wf.cmd.ping", b"{}")
    assert b'"ok":true' in raw.data


async def test_rejecting_a_breakdown_cancels_it_and_the_pm_runs_again_with_the_reason(hub: Hub) -> None:
    await to_breakdown_gate(hub, "Too big a step")
    reply = await hub.cmd("reject", project="demo", task_key="T-001", reason="split it further", actor="bob")
    assert reply["task"]["state"] == "queued"
    assert [t["state"] for t in reply["cancelled"]] == ["cancelled"]
    again = await hub.next_job("pm")
    assert (again.task.key, again.attempt) == ("T-001", 2)
    assert [(f.text, f.actor) for f in again.feedback] == [("split it further", "bob")]
    assert again.handoff["rejected"] == {"stage": "pm", "reason": "split it further"}
    gate = next(h for h in await hub.handoffs("T-001") if h["requires_approval"])
    assert (gate["rejected_by"], gate["decision_note"]) == ("bob", "split it further")
    assert await hub.state("T-002") == ("backlog", "cancelled")
    assert hub.events_of("approval.rejected", "T-001")


async def test_rejecting_at_deploy_sends_the_task_back_to_dev_with_the_reason(hub: Hub) -> None:
    await to_breakdown_gate(hub, "Login page")
    await hub.cmd("approve", project="demo", task_key="T-001")
    for stage in ("dev", "qa", "sec", "docs"):
        await hub.finish(await hub.next_job(stage))
    await hub.wait_state("T-002", "deploy", "awaiting_approval")
    await hub.cmd("reject", project="demo", task_key="T-002", reason="the button is off-screen")
    dev = await hub.next_job("dev")
    assert dev.task.key == "T-002"
    assert dev.handoff["rejected"]["reason"] == "the button is off-screen"
    assert "the button is off-screen" in [f.text for f in dev.feedback]
    assert (await hub.path("T-002"))[-1] == ("deploy", "dev")


async def test_feedback_reaches_the_next_job_of_the_task_and_of_its_children(hub: Hub) -> None:
    await to_breakdown_gate(hub, "Child")
    await hub.cmd("add_feedback", project="demo", task_key="T-001", text="keep it offline", actor="ann")
    await hub.cmd("add_feedback", project="demo", task_key="T-002", text="use sqlite", actor="ann")
    await hub.cmd("approve", project="demo", task_key="T-001")
    dev = await hub.next_job("dev")
    assert [f.text for f in dev.feedback] == ["keep it offline", "use sqlite"]
    assert len(hub.events_of("feedback.added")) == 2


async def test_feedback_on_the_idea_while_a_child_works_reaches_the_childs_next_stage(hub: Hub) -> None:
    """The child's next job is built from what the orchestrator remembers of it: feedback given to
    its parent meanwhile must make it forget that, or the QA agent would never see the feedback."""
    await to_breakdown_gate(hub, "Child")
    await hub.cmd("approve", project="demo", task_key="T-001")
    dev = await hub.next_job("dev")
    assert dev.feedback == []
    await hub.cmd("add_feedback", project="demo", task_key="T-001", text="mind the tests", actor="ann")
    await hub.finish(dev)
    qa = await hub.next_job("qa")
    assert [f.text for f in qa.feedback] == ["mind the tests"]


async def test_edit_task_changes_fields_and_dependencies(hub: Hub) -> None:
    await to_breakdown_gate(hub, "First", "Second", "Third")
    reply = await hub.cmd(
        "edit_task",
        project="demo",
        task_key="T-004",
        title="Third, renamed",
        priority=9,
        blocked_by=["T-003"],
    )
    assert reply["changes"] == {"title": "Third, renamed", "priority": 9, "blocked_by": ["T-003"]}
    assert reply["task"]["blocked_by"] == ["T-003"]
    err = await refused(hub, "edit_task", project="demo", task_key="T-003", blocked_by=["T-004"])
    assert err.code == "conflict"
    assert "T-003 → T-004 → T-003" in err.message
    err = await refused(hub, "edit_task", project="demo", task_key="T-003", blocked_by=["T-099"])
    assert err.code == "not_found"
    assert "T-099" in err.message
    assert hub.events_of("task.updated", "T-004")

    await hub.cmd("approve", project="demo", task_key="T-001")
    assert await hub.state("T-004") == ("dev", "blocked")
    # A queued task that gets a blocker that is not done is blocked; dropping it queues it again.
    await hub.cmd("edit_task", project="demo", task_key="T-003", blocked_by=["T-002"])
    assert await hub.state("T-003") == ("dev", "blocked")
    assert (await hub.task("T-003"))["status_reason"] == "blocked by T-002"
    await hub.cmd("edit_task", project="demo", task_key="T-004", blocked_by=[])
    assert await hub.state("T-004") == ("dev", "queued")


async def test_a_killed_bug_no_longer_goes_to_agents(hub: Hub) -> None:
    await to_breakdown_gate(hub, "Feature")
    await hub.cmd("approve", project="demo", task_key="T-001")
    await hub.finish(await hub.next_job("dev"))
    qa = await hub.next_job("qa")
    await hub.cmd("pause")
    await hub.fail_tests(qa, ["t::flaky"])
    await hub.wait_state("T-002", "dev", "queued")
    killed = await hub.cmd("kill_bug", project="demo", bug_key="B-001", reason="flaky test", actor="ann")
    assert killed["bug"]["status"] == "killed"
    err = await refused(hub, "kill_bug", project="demo", bug_key="B-001")
    assert err.code == "conflict"
    await hub.cmd("resume")
    dev = await hub.next_job("dev")
    assert dev.bugs == []
    assert dev.handoff["bug"] == "B-001"
    [bug] = await hub.bugs("T-002")
    assert (bug["killed_by"], bug["kill_reason"]) == ("ann", "flaky test")


async def test_a_card_moved_back_by_hand_is_reworked_and_a_line_comment_reaches_the_agent(hub: Hub) -> None:
    await to_breakdown_gate(hub, "Login page")
    await hub.cmd("approve", project="demo", task_key="T-001")
    dev = await hub.next_job("dev")
    await hub.cmd("pause")  # so the task waits, queued, in qa (a pause before the job went out kept it)
    await hub.finish(dev)
    await hub.wait_state("T-002", "qa", "queued")
    forward = await refused(hub, "move_task", project="demo", task_key="T-002", to_stage="sec")
    assert forward.code == "conflict"
    assert "cannot move forward from qa to sec" in forward.message
    await hub.cmd(
        "add_feedback", project="demo", task_key="T-002", text="null check", file="app/login.py", line=7
    )
    await hub.cmd("move_task", project="demo", task_key="T-002", to_stage="dev", actor="ann")
    await hub.wait_state("T-002", "dev", "queued")
    assert (await hub.path("T-002"))[-1] == ("qa", "dev")
    await hub.cmd("resume")
    dev = await hub.next_job("dev")
    assert dev.task.key == "T-002"
    assert [(f.text, f.file, f.line) for f in dev.feedback] == [("null check", "app/login.py", 7)]
