"""Each task on its own branch in its own worktree, run in parallel by the real runner; checkpoints;
the deploy gate's merge (fast-forward, merge commit, conflict back to DEV); rollback; queued pushes."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from wf_common.db.tables import pending_pushes

from tests.branches.conftest import Rig, write_and_finish
from tests.fakes.ollama import Reply
from tests.orchestrator.hub import eventually


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def files_on(root: Path, rev: str) -> list[str]:
    return git(root, "ls-tree", "-r", "--name-only", rev).splitlines()


async def test_two_tasks_run_in_parallel_on_their_own_branches_and_merge_at_deploy(
    make_rig: Callable[..., Any],
) -> None:
    rig: Rig = await make_rig()
    hub, ws = rig.hub, rig.workspace
    main = git(ws, "symbolic-ref", "--short", "HEAD")
    start = git(ws, "rev-parse", "HEAD")
    # Neither task's first model turn is answered until both have asked: run one after the other,
    # they would wait forever (and the test would time out).
    both = threading.Barrier(2)

    def parallel(path: str, text: str) -> Callable[[dict[str, Any], int], Reply]:
        finish = write_and_finish(path, text, f"Add {path}")

        def script(body: dict[str, Any], n: int) -> Reply:
            if n == 1:
                both.wait(20)
            return finish(body, n)

        return script

    rig.model.script("Add alpha", parallel("alpha.py", "ALPHA = 1\n"))
    rig.model.script("Add beta", parallel("beta.py", "BETA = 2\n"))
    async with rig.runner(concurrency=2):
        await rig.to_dev("Add alpha", "Add beta")
        await hub.wait_state("T-002", "deploy", "awaiting_approval", within=30)
        await hub.wait_state("T-003", "deploy", "awaiting_approval", within=30)

    for key, mine, theirs in (("T-002", "alpha.py", "beta.py"), ("T-003", "beta.py", "alpha.py")):
        tree = files_on(ws, f"wf/{key}")
        assert mine in tree
        assert theirs not in tree
        assert git(ws, "merge-base", f"wf/{key}", main) == start  # started from main as it was
        worktree = ws / ".workflow" / "worktrees" / key
        assert (worktree / mine).read_text() == ("ALPHA = 1\n" if key == "T-002" else "BETA = 2\n")
        assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD") == f"wf/{key}"
    assert git(ws, "rev-parse", main) == start  # nothing merged before the deploy approval
    assert git(ws, "status", "--porcelain") == ""  # worktrees stay out of the main checkout's status

    listed = await hub.cmd("list_checkpoints", project="demo", task_key="T-002")
    [checkpoint] = listed["checkpoints"]
    assert (checkpoint["number"], checkpoint["stage"]) == (1, "dev")
    assert checkpoint["ref"] == "refs/wf/checkpoints/T-002/1-dev"
    assert checkpoint["sha"] == start

    first = await hub.cmd("approve", project="demo", task_key="T-002")
    assert first["merge"]["kind"] == "fast-forward"
    assert first["merge"]["into"] == main
    assert git(ws, "rev-parse", main) == git(ws, "rev-parse", "wf/T-002")
    second = await hub.cmd("approve", project="demo", task_key="T-003")
    assert second["merge"]["kind"] == "merge"
    assert {"alpha.py", "beta.py"} <= set(files_on(ws, main))
    assert git(ws, "log", "-1", "--format=%P", main).split() == [
        git(ws, "rev-parse", "wf/T-002"),
        git(ws, "rev-parse", "wf/T-003"),
    ]
    assert (await hub.state("T-003")) == ("done", "done")
    assert [e.kind for e in hub.events_of("task.merged")] == ["fast-forward", "merge"]

    # Done and merged: the worktrees go, the branches stay.
    async def removed() -> bool:
        return (
            not (ws / ".workflow" / "worktrees" / "T-002").exists()
            and not (ws / ".workflow" / "worktrees" / "T-003").exists()
        )

    await eventually(removed, what="the finished tasks' worktrees to be removed")
    assert git(ws, "branch", "--list", "wf/*").split() == ["wf/T-002", "wf/T-003"]


async def test_a_merge_conflict_sends_the_task_back_to_dev_with_a_bug(make_rig: Callable[..., Any]) -> None:
    rig: Rig = await make_rig()
    hub, ws = rig.hub, rig.workspace
    main = git(ws, "symbolic-ref", "--short", "HEAD")
    rig.model.script("Add alpha", write_and_finish("shared.py", "VALUE = 'alpha'\n", "alpha"))

    def beta(body: dict[str, Any], n: int) -> Reply:
        if n == 1:
            return Reply.tool("write_file", path="shared.py", content="VALUE = 'beta'\n")
        if n == 3:  # back from the conflict: resolve it
            return Reply.tool("write_file", path="shared.py", content="VALUE = 'alpha and beta'\n")
        return Reply.tool("finish", status="pass", summary="beta")

    rig.model.script("Add beta", beta)
    async with rig.runner(concurrency=2):
        await rig.to_dev("Add alpha", "Add beta")
        await hub.wait_state("T-002", "deploy", "awaiting_approval", within=90)
        await hub.wait_state("T-003", "deploy", "awaiting_approval", within=90)
        await hub.cmd("approve", project="demo", task_key="T-002")
        before = git(ws, "rev-parse", main)

        reply = await hub.cmd("approve", project="demo", task_key="T-003")

        assert reply["merge"]["kind"] == "conflict"
        assert reply["merge"]["conflicts"] == ["shared.py"]
        assert git(ws, "rev-parse", main) == before  # the main branch is untouched
        assert git(ws, "status", "--porcelain") == ""  # and so is the main checkout
        [bug] = await hub.bugs("T-003")
        assert "shared.py" in bug["title"]
        assert bug["reproduction"]["conflicts"] == ["shared.py"]
        # DEV gets the task back with the bug, and its branch has both sides to resolve.
        await eventually(lambda: _asked(rig, "Add beta", 3), what="DEV's rework of T-003", within=90)
        rework = rig.model.requests_of("Add beta")[2]
        assert bug["bug_key"] in str(rework["messages"])
        await hub.wait_state("T-003", "deploy", "awaiting_approval", within=90)
    assert (await hub.path("T-003"))[-2:] == [("deploy", "dev"), ("dev", "deploy")]

    again = await hub.cmd("approve", project="demo", task_key="T-003")
    assert again["merge"]["kind"] in ("fast-forward", "merge")
    assert git(ws, "show", f"{main}:shared.py") == "VALUE = 'alpha and beta'"


async def _asked(rig: Rig, title: str, n: int) -> bool:
    return len(rig.model.requests_of(title)) >= n


async def test_rollback_resets_the_branch_to_a_checkpoint_and_keeps_what_was_there(
    make_rig: Callable[..., Any],
) -> None:
    rig: Rig = await make_rig()
    hub, ws = rig.hub, rig.workspace
    # Hooks planted in the workspace (as an agent with a shell could) must run on none of the git
    # work: the worktree's checkout, the checkpoint refs, the agent's commit, the rollback's reset.
    marker = ws.parent / "a-hook-ran"
    for hook in ("pre-commit", "post-commit", "post-checkout", "reference-transaction", "post-rewrite"):
        path = ws / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n", encoding="utf-8")
        path.chmod(0o755)
    rig.model.script("Add alpha", write_and_finish("alpha.py", "ALPHA = 1\n", "alpha"))
    async with rig.runner():
        await rig.to_dev("Add alpha")
        await hub.wait_state("T-002", "deploy", "awaiting_approval", within=30)
        worktree = ws / ".workflow" / "worktrees" / "T-002"
        dev_commit = git(ws, "rev-parse", "wf/T-002")
        (worktree / "notes.txt").write_text("a human's uncommitted notes\n", encoding="utf-8")

        reply = await hub.cmd("rollback", project="demo", task_key="T-002", to_stage="dev")

        assert reply["checkpoint"]["ref"] == "refs/wf/checkpoints/T-002/1-dev"
        assert reply["saved"]["ref"] == "refs/wf/checkpoints/T-002/2-rollback"
        assert git(ws, "rev-parse", "wf/T-002") == reply["checkpoint"]["sha"]
        saved = reply["saved"]["sha"]
        assert git(ws, "show", f"{saved}:notes.txt") == "a human's uncommitted notes"  # nothing lost
        assert git(ws, "show", f"{saved}:alpha.py") == "ALPHA = 1"
        assert git(ws, "merge-base", "--is-ancestor", dev_commit, saved) == ""
        assert hub.events_of("task.rolled_back", "T-002")
        # Back in DEV, which runs again from the checkpoint.
        await hub.wait_state("T-002", "deploy", "awaiting_approval", within=30)
    assert (await hub.path("T-002"))[-2:] == [("deploy", "dev"), ("dev", "deploy")]
    names = [c["ref"].rsplit("/", 1)[-1] for c in (await hub.cmd(
        "list_checkpoints", project="demo", task_key="T-002"
    ))["checkpoints"]]  # fmt: skip
    assert names == ["1-dev", "2-rollback", "3-dev"]

    assert not marker.exists(), marker.read_text()

    err = await hub.reply("rollback", project="demo", task_key="T-002", to_stage="qa")
    assert err.error is not None
    assert err.error.code == "invalid"


async def test_a_push_to_an_unreachable_remote_is_queued_and_goes_out_once_it_appears(
    make_rig: Callable[..., Any], tmp_path: Path
) -> None:
    rig: Rig = await make_rig()
    hub, ws = rig.hub, rig.workspace
    remote = tmp_path / "offline" / "remote.git"
    git(ws, "remote", "add", "origin", str(remote))
    main = git(ws, "symbolic-ref", "--short", "HEAD")
    rig.model.script("Add alpha", write_and_finish("alpha.py", "ALPHA = 1\n", "alpha"))
    async with rig.runner():
        await rig.to_dev("Add alpha")
        await hub.wait_state("T-002", "deploy", "awaiting_approval", within=30)
    reply = await hub.cmd("approve", project="demo", task_key="T-002")
    assert reply["merge"]["push"] == "queued"

    async def failed_attempt() -> dict[str, Any] | None:
        async with hub.db.connect() as conn:
            row = (await conn.execute(select(pending_pushes))).mappings().first()
        return dict(row) if row and row["attempts"] >= 1 else None

    row = await eventually(failed_attempt, what="a failed push attempt to be recorded")
    assert row["branch"] == main
    assert row["remote"] == "origin"
    assert row["last_error"]

    remote.parent.mkdir(parents=True)
    git(tmp_path, "init", "-q", "--bare", str(remote))

    async def pushed() -> bool:
        async with hub.db.connect() as conn:
            left = (await conn.execute(select(pending_pushes))).first()
        return left is None

    await eventually(pushed, what="the queued push to succeed", within=20)
    assert git(remote, "rev-parse", main) == git(ws, "rev-parse", main)
