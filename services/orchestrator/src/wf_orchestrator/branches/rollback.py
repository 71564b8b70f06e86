"""`wf rollback T-002 --to dev` and `wf checkpoints T-002`.

Rollback resets the task's branch to the checkpoint written before the named stage (its latest
one), keeps what was there — commits and uncommitted files alike — under a `<n>-rollback`
checkpoint, and sends the task back to that stage. A running task is refused: pause it or let the
job finish first, so no agent is writing in the worktree while it is reset.
"""

from __future__ import annotations

import asyncio
from typing import Any

from wf_common.commands import ListCheckpoints, Rollback
from wf_common.config import GitConfig
from wf_common.errors import CommandError
from wf_common.events import TaskRolledBack
from wf_common.gitops import tasks as gtasks
from wf_common.gitops.layout import worktree_path
from wf_common.gitops.safe import GitError
from wf_common.jobs import utcnow
from wf_common.states import TaskState

from wf_orchestrator.branches import reads
from wf_orchestrator.pipeline import machine
from wf_orchestrator.pipeline.model import Decision, Handoff
from wf_orchestrator.tasks import repo, transitions
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.tasks.rows import ProjectRow, TaskRow
from wf_orchestrator.uow import Runner, UnitOfWork

_FINISHED = (TaskState.DONE, TaskState.CANCELLED)


class Rollbacks:
    def __init__(self, runner: Runner, ctx: Context, git: GitConfig) -> None:
        self._runner = runner
        self._ctx = ctx
        self._git = git

    async def _find(self, slug: str, key: str) -> tuple[ProjectRow, TaskRow]:
        return await reads.project_and_task(self._runner.engine, slug, key)

    async def checkpoints(self, cmd: ListCheckpoints) -> dict[str, Any]:
        project, task = await self._find(cmd.project, cmd.task_key)
        try:
            found = await asyncio.to_thread(gtasks.list_checkpoints, project.workspace, task.task_key)
        except GitError as err:
            raise CommandError("unavailable", str(err)) from None
        return {"task_key": task.task_key, "checkpoints": [c.as_dict() for c in found]}

    async def rollback(self, cmd: Rollback) -> dict[str, Any]:
        pipeline = self._ctx.pipeline
        stage = pipeline.stage(cmd.to_stage)
        work = [s.name for s in pipeline.stages[1:] if s.agent]
        if stage is None or cmd.to_stage not in work:
            raise CommandError("invalid", f"to_stage: {cmd.to_stage!r} is not a work stage; one of {work}")
        project, task = await self._find(cmd.project, cmd.task_key)
        self._check_state(task)
        path = worktree_path(project.workspace, project.slug, task.task_key, self._git.worktrees_dir)
        try:
            target, saved = await asyncio.to_thread(
                gtasks.rollback, project.workspace, task.task_key, cmd.to_stage, path
            )
        except gtasks.NoCheckpoint as err:
            raise CommandError("not_found", str(err)) from None
        except GitError as err:
            raise CommandError("unavailable", f"the rollback failed: {err}") from None

        async def send_back(uow: UnitOfWork) -> dict[str, Any]:
            found = await repo.lock_task_by_key(uow.conn, project.id, task.task_key)
            if found is None:
                raise CommandError("not_found", f"there is no task {task.task_key}")
            current, ready = found
            self._check_state(current)
            note = f"rolled back to checkpoint {target.number}-{target.stage} ({target.sha[:10]})"
            payload = {"rollback": {"checkpoint": target.ref, "sha": target.sha, "saved": saved.ref}}
            decision = Decision(
                place=machine.arrive(pipeline, cmd.to_stage, ready),
                handoff=Handoff(current.current_stage, cmd.to_stage, payload, notes=note),
            )
            applied = await transitions.apply(
                uow, self._ctx, current, decision, actor=cmd.actor, now=utcnow()
            )
            uow.emit(
                TaskRolledBack(
                    project=project.slug,
                    task_key=task.task_key,
                    actor=cmd.actor,
                    to_stage=cmd.to_stage,
                    checkpoint=target.ref,
                    sha=target.sha,
                    saved=saved.ref,
                )
            )
            return {
                "task": self._ctx.snapshot_cached(applied.task).model_dump(mode="json"),
                "checkpoint": target.as_dict(),
                "saved": saved.as_dict(),
            }

        return await self._runner.run(send_back, must_publish=False)

    @staticmethod
    def _check_state(task: TaskRow) -> None:
        if task.is_idea:
            raise CommandError("conflict", f"{task.task_key} is an idea; it has no branch to roll back")
        if task.state == TaskState.RUNNING:
            raise CommandError(
                "conflict",
                f"{task.task_key} is running in {task.current_stage}; wait for the job to finish "
                "(or `wf pause` it and let it end) before rolling back",
            )
        if task.state in _FINISHED:
            raise CommandError(
                "conflict", f"{task.task_key} is {task.state}; a finished task is not rolled back"
            )
