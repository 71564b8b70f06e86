"""The deploy gate's merge: approving a task at `git.merge_stage` merges its branch into the main
branch (fast-forward, or a merge commit), then queues a push when the workspace has the remote.

The merge runs here, in the orchestrator, off the event loop (`asyncio.to_thread`), rather than as a
runner job of a "deploy" kind: it is the human's approval that causes it, its outcome decides where
the task goes (on, or back to DEV), it runs no model-written code (git's hooks and filters are off),
and it takes milliseconds. The orchestrator already writes the repository when it creates a project.
A conflict changes nothing on the main branch: the task goes back to DEV with a bug naming the
conflicting files, and its branch gets the main branch merged in with the conflict markers to resolve.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from wf_common.commands import Approve
from wf_common.config import GitConfig
from wf_common.errors import CommandError
from wf_common.events import TaskMerged
from wf_common.gitops import tasks as gtasks
from wf_common.gitops.layout import task_branch, worktree_path
from wf_common.gitops.safe import GitError
from wf_common.jobs import utcnow
from wf_common.states import TaskState

from wf_orchestrator.branches import reads
from wf_orchestrator.branches.pushes import PushQueue
from wf_orchestrator.pipeline import machine
from wf_orchestrator.pipeline.model import Decision, Handoff, NewBug
from wf_orchestrator.tasks import repo, transitions
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.uow import OwnHandler, Runner, UnitOfWork

log = logging.getLogger(__name__)


class DeployMerge:
    def __init__(self, runner: Runner, ctx: Context, git: GitConfig, pushes: PushQueue) -> None:
        self._runner = runner
        self._ctx = ctx
        self._git = git
        self._pushes = pushes

    async def approve(self, cmd: Approve, approve: OwnHandler) -> dict[str, Any]:
        try:
            project, task = await reads.project_and_task(self._runner.engine, cmd.project, cmd.task_key)
        except CommandError:
            return await approve()  # the approve handler says what is missing
        at_gate = task.current_stage == self._git.merge_stage and task.state == TaskState.AWAITING_APPROVAL
        if not at_gate or task.is_idea:
            return await approve()
        ws, key = project.workspace, task.task_key
        try:
            outcome = await asyncio.to_thread(
                gtasks.merge_task, ws, key, title=task.title, main=self._git.main_branch, missing_ok=True
            )
        except gtasks.MergeBlocked as err:
            raise CommandError("conflict", str(err)) from None
        except GitError as err:
            raise CommandError("unavailable", f"the deploy merge failed: {err}") from None
        if outcome is None:  # the task never had a branch (e.g. it predates worktrees)
            return await approve()
        into = outcome.into
        if outcome.kind == "conflict":
            path = worktree_path(ws, project.slug, key, self._git.worktrees_dir)
            try:
                head = await asyncio.to_thread(
                    gtasks.merge_main_into_task, ws, key, path, main=self._git.main_branch
                )
            except GitError as err:
                raise CommandError(
                    "unavailable", f"the deploy merge found conflicts and then failed: {err}"
                ) from None
            return await self._runner.run(lambda uow: self._back_to_dev(uow, cmd, outcome, into, head))
        merged = TaskMerged(
            project=project.slug,
            task_key=key,
            actor=cmd.actor,
            branch=task_branch(key),
            into=into,
            kind=outcome.kind,
            sha=outcome.sha,
        )
        data = await approve(lambda uow: uow.emit(merged))  # committed with the approval
        data["merge"] = {"kind": outcome.kind, "into": into, "sha": outcome.sha}
        if await asyncio.to_thread(gtasks.has_remote, ws, self._git.remote):
            data["merge"]["push"] = await self._pushes.enqueue(project.id, self._git.remote, into)
        return data

    async def _back_to_dev(
        self, uow: UnitOfWork, cmd: Approve, outcome: gtasks.MergeOutcome, into: str, head: str
    ) -> dict[str, Any]:
        ctx, pipeline = self._ctx, self._ctx.pipeline
        project = await repo.project_by_slug(uow.conn, cmd.project)
        found = await repo.lock_task_by_key(uow.conn, project.id, cmd.task_key) if project else None
        if project is None or found is None:
            raise CommandError("not_found", f"there is no task {cmd.task_key} in project {cmd.project!r}")
        task, ready = found
        if task.current_stage != self._git.merge_stage or task.state != TaskState.AWAITING_APPROVAL:
            raise CommandError("conflict", f"{task.task_key} is no longer waiting at {self._git.merge_stage}")
        now = utcnow()
        files = ", ".join(outcome.conflicts)
        why = f"merging {task_branch(task.task_key)} into {into} conflicts in {files}"
        await repo.decide_pending_gate(uow.conn, task.id, approved=False, at=now, by=cmd.actor, note=why)
        dev = machine.first_work_stage(pipeline)
        conflict = {"into": into, "files": outcome.conflicts, "main": outcome.sha, "branch_head": head}
        decision = Decision(
            place=machine.arrive(pipeline, dev, ready),
            handoff=Handoff(task.current_stage, dev, {"merge_conflict": conflict}, notes=why),
            bug=NewBug(
                title=f"Merge conflict with {into} in {files}"[:255],
                description=(
                    f"The deploy merge of {task_branch(task.task_key)} into {into} stopped on conflicts in "
                    f"{files}. {into} has been merged into the task's branch with git's conflict markers "
                    "(<<<<<<< ======= >>>>>>>) in those files: keep what both sides need, remove the "
                    "markers, and make the tests pass."
                ),
                source_stage=task.current_stage,
                reproduction={"conflicts": outcome.conflicts, "into": into, "git_output": outcome.detail},
            ),
        )
        applied = await transitions.apply(uow, ctx, task, decision, actor=cmd.actor, now=now)
        uow.emit(
            TaskMerged(
                project=project.slug,
                task_key=task.task_key,
                actor=cmd.actor,
                branch=task_branch(task.task_key),
                into=into,
                kind="conflict",
                conflicts=outcome.conflicts,
            )
        )
        return {
            "task": ctx.snapshot_cached(applied.task).model_dump(mode="json"),
            "merge": {
                "kind": "conflict",
                "into": into,
                "conflicts": outcome.conflicts,
                "bug": applied.bug_key,
            },
        }
