"""Command handlers that change tasks and bugs. Each runs inside one unit of work and returns the
reply's `data`; a refusal is a CommandError (not_found / conflict / invalid) and rolls back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from wf_common.commands import (
    AddFeedback,
    Approve,
    CancelTask,
    EditTask,
    KillBug,
    MoveTask,
    Reject,
    RetryTask,
    SubmitIdea,
)
from wf_common.config import ENTRY_STAGE
from wf_common.db.tables import bugs, feedback, tasks
from wf_common.errors import CommandError
from wf_common.events import (
    ApprovalGranted,
    ApprovalRejected,
    BugKilled,
    FeedbackAdded,
    TaskCreated,
    TaskUpdated,
)
from wf_common.jobs import utcnow
from wf_common.states import TaskState

from wf_orchestrator.pipeline import find_cycle, machine
from wf_orchestrator.pipeline.model import Decision, Place
from wf_orchestrator.tasks import repo, transitions
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.tasks.rows import ProjectRow, TaskRow
from wf_orchestrator.uow import UnitOfWork


async def project_of(uow: UnitOfWork, ctx: Context, slug: str) -> ProjectRow:
    project = await repo.project_by_slug(uow.conn, slug)
    if project is None:
        raise CommandError("not_found", f"there is no project {slug!r}; create it with `wf project create`")
    ctx.projects[project.id] = project
    return project


async def _task(uow: UnitOfWork, ctx: Context, slug: str, key: str) -> tuple[ProjectRow, TaskRow, bool]:
    found = await repo.task_in_project(uow.conn, slug, key, lock=True)
    if found is None:
        await project_of(uow, ctx, slug)  # raises when it is the project that is missing
        raise CommandError("not_found", f"there is no task {key} in project {slug!r}")
    project, task, ready = found
    ctx.projects[project.id] = project
    # A human touched the task: the hop must not build its next job from what it cached.
    ctx.memory.forget_task(task.id)
    return project, task, ready


async def insert_entry_task(
    uow: UnitOfWork,
    ctx: Context,
    project: ProjectRow,
    *,
    title: str,
    text: str,
    priority: int,
    actor: str,
    now: datetime,
    acceptance_criteria: list[str] | None = None,
) -> TaskRow:
    """A new task of `project` at the entry stage (its next key), announced with `task.created`; the
    caller applies the transition that sends it on (an idea to the PM, a hook's task to work)."""
    number = await repo.next_numbers(uow.conn, project.id, "next_task_number")
    values: dict[str, Any] = {
        "project_id": project.id,
        "task_key": repo.task_key(number),
        "title": title,
        "description": text,
        "current_stage": ENTRY_STAGE,
        "state": TaskState.QUEUED.value,
        "priority": priority,
        "created_by": actor[:50],
        "created_at": now,
        "updated_at": now,
    }
    if acceptance_criteria is not None:
        values["acceptance_criteria"] = acceptance_criteria
    [task] = await repo.insert_tasks(uow.conn, [values])
    snapshot = ctx.snapshot_cached(task)
    uow.emit(TaskCreated(project=project.slug, task_key=task.task_key, actor=actor, task=snapshot))
    return task


async def submit_idea(uow: UnitOfWork, ctx: Context, cmd: SubmitIdea) -> dict[str, Any]:
    project = await project_of(uow, ctx, cmd.project)
    now = utcnow()
    idea = await insert_entry_task(
        uow,
        ctx,
        project,
        title=machine.first_line(cmd.text, machine.TITLE_MAX) or cmd.text[: machine.TITLE_MAX],
        text=cmd.text,
        priority=cmd.priority,
        actor=cmd.actor,
        now=now,
    )
    applied = await transitions.apply(
        uow, ctx, idea, machine.submit_idea(ctx.pipeline), actor=cmd.actor, now=now
    )
    return {"task": ctx.snapshot_cached(applied.task).model_dump(mode="json")}


async def _drafts(uow: UnitOfWork, idea: TaskRow) -> list[tuple[TaskRow, bool]]:
    ids = (
        (
            await uow.conn.execute(
                select(tasks.c.id).where(tasks.c.parent_id == idea.id, tasks.c.state == TaskState.DRAFT.value)
            )
        )
        .scalars()
        .all()
    )
    return await repo.lock_tasks(uow.conn, ids)


async def approve(uow: UnitOfWork, ctx: Context, cmd: Approve) -> dict[str, Any]:
    project, task, blockers_done = await _task(uow, ctx, cmd.project, cmd.task_key)
    now = utcnow()
    # Marked approved before the decision: a decision that refuses raises, and all is rolled back.
    pending = await repo.decide_pending_gate(
        uow.conn, task.id, approved=True, at=now, by=cmd.actor, note=cmd.note
    )
    decision = machine.on_approve(
        ctx.pipeline,
        task.facts(blockers_done=blockers_done),
        dict(pending["payload"]) if pending else {},
        cmd.note,
    )
    released = []
    if machine.is_breakdown_gate(ctx.pipeline, task.facts()):
        for child, child_ready in await _drafts(uow, task):
            d = machine.release_draft(ctx.pipeline, child.facts(blockers_done=child_ready), task.task_key)
            released.append((await transitions.apply(uow, ctx, child, d, actor=cmd.actor, now=now)).task)
    gate_id = pending["id"] if pending is not None else None
    applied = await transitions.apply(
        uow,
        ctx,
        task,
        decision,
        actor=cmd.actor,
        now=now,
        gate_handoff_id=gate_id if decision.handoff is None else None,
    )
    uow.emit(
        ApprovalGranted(
            project=project.slug,
            task_key=task.task_key,
            actor=cmd.actor,
            stage=task.current_stage,
            handoff_id=gate_id or applied.handoff_id or 0,
            note=cmd.note,
        )
    )
    return {
        "task": ctx.snapshot_cached(applied.task).model_dump(mode="json"),
        "released": [ctx.snapshot_cached(c).model_dump(mode="json") for c in released],
    }


async def _add_feedback(
    uow: UnitOfWork,
    project: ProjectRow,
    task: TaskRow,
    text: str,
    actor: str,
    *,
    file: str | None = None,
    line: int | None = None,
) -> int:
    fid = await uow.conn.scalar(
        insert(feedback)
        .values(
            task_id=task.id,
            execution_id=task.current_execution_id,
            text=text,
            actor=actor[:100],
            file=file,
            line=line,
        )
        .returning(feedback.c.id)
    )
    uow.emit(
        FeedbackAdded(
            project=project.slug, task_key=task.task_key, actor=actor, text=text, file=file, line=line
        )
    )
    if fid is None:
        raise RuntimeError("invariant broken: the feedback row has no id")
    return int(fid)


async def reject(uow: UnitOfWork, ctx: Context, cmd: Reject) -> dict[str, Any]:
    project, task, blockers_done = await _task(uow, ctx, cmd.project, cmd.task_key)
    decision = machine.on_reject(ctx.pipeline, task.facts(blockers_done=blockers_done), cmd.reason)
    now = utcnow()
    pending = await repo.decide_pending_gate(
        uow.conn, task.id, approved=False, at=now, by=cmd.actor, note=cmd.reason
    )
    uow.emit(
        ApprovalRejected(
            project=project.slug,
            task_key=task.task_key,
            actor=cmd.actor,
            stage=task.current_stage,
            handoff_id=pending["id"] if pending else 0,
            reason=cmd.reason,
        )
    )
    # The reason reaches the agent that runs next as feedback (and the rework handoff carries it).
    await _add_feedback(uow, project, task, cmd.reason, cmd.actor)
    cancelled = []
    if machine.is_breakdown_gate(ctx.pipeline, task.facts()):
        for child, _ in await _drafts(uow, task):
            d = machine.cancel_draft(child.facts(), task.task_key)
            cancelled.append((await transitions.apply(uow, ctx, child, d, actor=cmd.actor, now=now)).task)
    applied = await transitions.apply(uow, ctx, task, decision, actor=cmd.actor, now=now)
    return {
        "task": ctx.snapshot_cached(applied.task).model_dump(mode="json"),
        "cancelled": [ctx.snapshot_cached(c).model_dump(mode="json") for c in cancelled],
    }


async def retry_task(uow: UnitOfWork, ctx: Context, cmd: RetryTask) -> dict[str, Any]:
    _, task, blockers_done = await _task(uow, ctx, cmd.project, cmd.task_key)
    decision = machine.on_retry(ctx.pipeline, task.facts(blockers_done=blockers_done))
    applied = await transitions.apply(uow, ctx, task, decision, actor=cmd.actor, now=utcnow())
    return {"task": ctx.snapshot_cached(applied.task).model_dump(mode="json")}


async def move_task(uow: UnitOfWork, ctx: Context, cmd: MoveTask) -> dict[str, Any]:
    _, task, blockers_done = await _task(uow, ctx, cmd.project, cmd.task_key)
    facts = task.facts(blockers_done=blockers_done)
    decision = machine.on_move(ctx.pipeline, facts, cmd.to_stage)
    applied = await transitions.apply(uow, ctx, task, decision, actor=cmd.actor, now=utcnow())
    return {"task": ctx.snapshot_cached(applied.task).model_dump(mode="json")}


async def cancel_task(uow: UnitOfWork, ctx: Context, cmd: CancelTask) -> dict[str, Any]:
    _, task, blockers_done = await _task(uow, ctx, cmd.project, cmd.task_key)
    waiting = (
        (
            await uow.conn.execute(
                select(tasks.c.task_key)
                .where(
                    tasks.c.blocked_by.any_() == task.id,
                    tasks.c.state.not_in([TaskState.DONE.value, TaskState.CANCELLED.value]),
                )
                .order_by(tasks.c.id)
            )
        )
        .scalars()
        .all()
    )
    decision = machine.on_cancel(task.facts(blockers_done=blockers_done), cmd.reason, list(waiting))
    applied = await transitions.apply(uow, ctx, task, decision, actor=cmd.actor, now=utcnow())
    return {"task": ctx.snapshot_cached(applied.task).model_dump(mode="json")}


async def add_feedback(uow: UnitOfWork, ctx: Context, cmd: AddFeedback) -> dict[str, Any]:
    project, task, _ = await _task(uow, ctx, cmd.project, cmd.task_key)
    fid = await _add_feedback(uow, project, task, cmd.text, cmd.actor, file=cmd.file, line=cmd.line)
    return {"task_key": task.task_key, "feedback_id": fid}


async def kill_bug(uow: UnitOfWork, ctx: Context, cmd: KillBug) -> dict[str, Any]:
    project = await project_of(uow, ctx, cmd.project)
    bug = (
        (
            await uow.conn.execute(
                select(bugs)
                .where(bugs.c.project_id == project.id, bugs.c.bug_key == cmd.bug_key)
                .with_for_update()
            )
        )
        .mappings()
        .first()
    )
    if bug is None:
        raise CommandError("not_found", f"there is no bug {cmd.bug_key} in project {cmd.project!r}")
    if bug["status"] == "killed":
        raise CommandError("conflict", f"{cmd.bug_key} is already killed")
    row = (
        (
            await uow.conn.execute(
                update(bugs)
                .where(bugs.c.id == bug["id"])
                .values(
                    status="killed",
                    killed_at=utcnow(),
                    killed_by=cmd.actor[:100],
                    kill_reason=cmd.reason or None,
                )
                .returning(bugs)
            )
        )
        .mappings()
        .one()
    )
    ctx.memory.forget_task(row["task_id"])  # the open bugs a cached job carries changed
    await ctx.ensure_keys(uow.conn, [row["task_id"]])
    task_key = ctx.keys[row["task_id"]]
    snap = ctx.bug_snapshot(row, task_key)
    uow.emit(BugKilled(project=project.slug, task_key=task_key, actor=cmd.actor, bug=snap, reason=cmd.reason))
    return {"bug": snap.model_dump(mode="json")}


async def edit_task(uow: UnitOfWork, ctx: Context, cmd: EditTask) -> dict[str, Any]:
    project, task, _ = await _task(uow, ctx, cmd.project, cmd.task_key)
    values: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    for field in ("title", "description", "acceptance_criteria", "priority"):
        new = getattr(cmd, field)
        if new is not None and new != getattr(task, field):
            values[field] = new
            changes[field] = new
    blockers: list[int] | None = None
    if cmd.blocked_by is not None:
        blockers = await _blockers(uow, project, task, list(dict.fromkeys(cmd.blocked_by)))
        if blockers != task.blocked_by:
            values["blocked_by"] = blockers
            changes["blocked_by"] = list(dict.fromkeys(cmd.blocked_by))
    now = utcnow()
    if values:
        values["updated_at"] = now
        task = await repo.update_task(uow.conn, task.id, values)
        ctx.remember(task)
    if blockers is not None and "blocked_by" in values:
        ready = await repo.blockers_done(uow.conn, blockers)
        decision = machine.on_blockers_changed(task.facts(blockers_done=ready))
        if decision is None and task.state == TaskState.BLOCKED:
            # Still blocked, by other tasks now: rewrite the "blocked by ..." reason.
            decision = Decision(place=Place(task.current_stage, TaskState.BLOCKED))
        if decision is not None:
            task = (await transitions.apply(uow, ctx, task, decision, actor=cmd.actor, now=now)).task
    snap = await ctx.snapshot(uow.conn, task)
    if changes:
        uow.emit(
            TaskUpdated(
                project=project.slug, task_key=task.task_key, actor=cmd.actor, task=snap, changes=changes
            )
        )
    return {"task": snap.model_dump(mode="json"), "changes": changes}


async def _blockers(uow: UnitOfWork, project: ProjectRow, task: TaskRow, keys: list[str]) -> list[int]:
    """blocked_by keys → ids; unknown keys, the task itself, cancelled tasks and cycles are refused."""
    if task.task_key in keys:
        # Well-formed (the schema cannot relate a body to the path), but a dependency cycle of one.
        raise CommandError("conflict", f"blocked_by: {task.task_key} cannot be blocked by itself (a cycle)")
    graph = (
        await uow.conn.execute(
            select(tasks.c.id, tasks.c.task_key, tasks.c.state, tasks.c.blocked_by).where(
                tasks.c.project_id == project.id
            )
        )
    ).all()
    by_key = {r.task_key: r for r in graph}
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        raise CommandError(
            "not_found", f"blocked_by: no task {', '.join(unknown)} in project {project.slug!r}"
        )
    cancelled = [k for k in keys if by_key[k].state == TaskState.CANCELLED]
    if cancelled:
        raise CommandError(
            "conflict", f"blocked_by: {', '.join(cancelled)} is cancelled and will never be done"
        )
    ids = [by_key[k].id for k in keys]
    cycle = find_cycle({r.id: list(r.blocked_by or []) for r in graph}, task.id, ids)
    if cycle:
        names = {r.id: r.task_key for r in graph}
        raise CommandError(
            "conflict", "blocked_by would make a dependency cycle: " + " → ".join(names[i] for i in cycle)
        )
    return ids
