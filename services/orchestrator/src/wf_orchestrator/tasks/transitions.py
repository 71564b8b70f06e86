"""Apply a state-machine `Decision` to a locked task: write its rows, queue its events, and follow on
(a task reaching done unblocks the tasks waiting for it and may finish its idea)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import insert
from wf_common.config import ENTRY_STAGE
from wf_common.db.tables import attachments, bugs
from wf_common.events import (
    ApprovalRequested,
    BugCreated,
    BugFixed,
    TaskCreated,
    TaskMoved,
    TaskStateChanged,
)
from wf_common.jobs import PlannedTask, utcnow
from wf_common.states import TaskState

from wf_orchestrator.outbox import Stored
from wf_orchestrator.pipeline import machine
from wf_orchestrator.pipeline.model import Decision
from wf_orchestrator.tasks import repo, sql
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.tasks.rows import TaskRow
from wf_orchestrator.uow import UnitOfWork


@dataclass
class Applied:
    task: TaskRow
    handoff_id: int | None = None
    handoff_payload: dict[str, Any] | None = None
    bug_key: str | None = None
    children: list[TaskRow] | None = None


async def apply(
    uow: UnitOfWork,
    ctx: Context,
    task: TaskRow,
    d: Decision,
    *,
    actor: str,
    now: datetime,
    execution_id: int | None = None,
    gate_handoff_id: int | None = None,
    execution: dict[str, Any] | None = None,
    may_have_bugs: bool = True,
    handoff_id: int | None = None,
    last: bool = False,
) -> Applied:
    """Write `d` for `task` (locked by the caller).

    `gate_handoff_id`: the pending gate handoff a decision without a handoff of its own moves the task
    along (a gated agent stage approved). `execution`: the record of the execution that ends with this
    decision (status, result_* ...; see sql.APPLY), written in the same statement. `may_have_bugs`
    False skips marking the stage's bugs fixed (the caller knows there are none open). `handoff_id`: an
    id reserved for the handoff (else one is reserved here). `last`: the caller writes nothing after
    this, so the unit of work's outbox rows can go in the same statement when nothing follows here.
    """
    conn = uow.conn
    project = await ctx.project(conn, task.project_id)
    bug_key = await _create_bug(uow, ctx, task, d, actor, execution_id) if d.bug else None
    children = await _create_children(uow, ctx, task, d.children, now) if d.children else None

    payload: dict[str, Any] | None = None
    h = d.handoff
    hid = gate_handoff_id
    if h is not None:
        payload = dict(h.payload)
        if bug_key:
            payload["bug"] = bug_key
        if children:
            payload["tasks"] = [_planned(c, p, ctx) for c, p in zip(children, d.children, strict=True)]
        hid = handoff_id or (
            await ctx.ids.handoff() if ctx.ids else int(await conn.scalar(sql.NEXT_HANDOFF_ID) or 0)
        )
    elif hid is None and d.place.stage != task.current_stage:
        hid = await repo.last_handoff_id(conn, task.id)

    place = d.place
    await ctx.ensure_keys(conn, task.blocked_by)
    reason = place.reason
    if reason is None and place.state == TaskState.BLOCKED:
        reason = "blocked by " + ", ".join(ctx.keys.get(b, f"#{b}") for b in task.blocked_by)
    clear_execution = task.state == TaskState.RUNNING and place.state != TaskState.RUNNING
    # The row as the statement below leaves it: events are built from it before it is written.
    new = replace(
        task,
        current_stage=place.stage,
        state=place.state.value,
        status_reason=reason,
        updated_at=now,
        rework_count=task.rework_count if d.rework_count is None else d.rework_count,
        completed_at=now if d.completed else task.completed_at,
        current_execution_id=None if clear_execution else task.current_execution_id,
    )
    snap = await ctx.snapshot(conn, new)
    common = {"project": project.slug, "task_key": task.task_key, "actor": actor}
    if place.stage != task.current_stage:
        uow.emit(
            TaskMoved(
                **common,
                task=snap,
                from_stage=task.current_stage,
                to_stage=place.stage,
                handoff_id=hid or 0,
                notes=h.notes if h else "",
            )
        )
    if place.state != task.state:
        uow.emit(
            TaskStateChanged(
                **common, task=snap, from_state=task.state, to_state=place.state.value, reason=reason
            )
        )
    if d.approval_requested:
        uow.emit(
            ApprovalRequested(**common, stage=place.stage, handoff_id=hid or 0, summary=h.notes if h else "")
        )

    fix_stage = d.fix_bugs_of_stage if may_have_bugs else None
    fold = last and fix_stage is None and not d.completed
    messages = uow.messages if fold else []
    row = (
        (
            await conn.execute(
                sql.APPLY,
                {
                    "task_id": task.id,
                    "actor": actor[:100],
                    "now": now,
                    "with_handoff": h is not None,
                    "h_id": hid if h is not None else None,
                    "h_from_execution_id": execution_id,
                    "h_from_stage": h.from_stage if h else None,
                    "h_to_stage": h.to_stage if h else None,
                    "h_payload": payload,
                    "h_notes": (h.notes or None) if h else None,
                    "h_requires_approval": h.requires_approval if h else False,
                    "h_approved_at": now if h and h.approved else None,
                    "h_approved_by": actor[:100] if h and h.approved else None,
                    **(_execution_params(execution, payload) if execution else sql.NO_EXECUTION),
                    "fix_stage": fix_stage,
                    "stage": place.stage,
                    "state": place.state.value,
                    "status_reason": reason,
                    "rework_count": d.rework_count,
                    "completed": d.completed,
                    "clear_execution": clear_execution,
                    "o_subjects": [m.subject for m in messages],
                    "o_payloads": [m.payload for m in messages],
                    "o_msg_ids": [m.msg_id for m in messages],
                },
            )
        )
        .mappings()
        .one()
    )
    if fold:
        ids = row["outbox_ids"]
        uow.stored.extend(Stored(ids[m.msg_id], m) for m in messages)
        uow.messages = []
    for b in row["fixed_bugs"]:
        uow.emit(BugFixed(**common, bug=ctx.bug_snapshot(b, task.task_key)))
    if place.state == TaskState.QUEUED:
        uow.wants_dispatch = uow.made_ready = True
    elif task.state == TaskState.RUNNING:
        uow.wants_dispatch = True  # a slot freed: the dispatcher's pass after the commit fills it
    if d.completed:
        await _follow_done(uow, ctx, new, actor, now)
    return Applied(new, hid, payload, bug_key, children)


def _execution_params(execution: dict[str, Any], outgoing: dict[str, Any] | None) -> dict[str, Any]:
    return {
        f"e_{k}": execution.get(k)
        for k in (
            "id",
            "status",
            "result_status",
            "result_summary",
            "result_details",
            "usage",
            "started_at",
            "completed_at",
            "runner_id",
        )
    } | {"e_outgoing_handoff": outgoing}


def _planned(child: TaskRow, plan: PlannedTask, ctx: Context) -> dict[str, Any]:
    return {
        "key": child.task_key,
        "title": child.title,
        "priority": child.priority,
        "acceptance_criteria": list(plan.acceptance_criteria),
        "blocked_by": [ctx.keys[b] for b in child.blocked_by],
    }


async def _create_bug(
    uow: UnitOfWork, ctx: Context, task: TaskRow, d: Decision, actor: str, execution_id: int | None
) -> str:
    if not (d.bug is not None):
        raise RuntimeError("invariant broken: d.bug is not None")
    conn = uow.conn
    key = repo.bug_key(await repo.next_numbers(conn, task.project_id, "next_bug_number"))
    row = (
        (
            await conn.execute(
                insert(bugs)
                .values(
                    project_id=task.project_id,
                    task_id=task.id,
                    execution_id=execution_id,
                    bug_key=key,
                    title=d.bug.title[:255] or "failure",
                    description=d.bug.description,
                    source_stage=d.bug.source_stage,
                    reproduction=d.bug.reproduction,
                    created_by=actor[:100],
                )
                .returning(bugs)
            )
        )
        .mappings()
        .one()
    )
    if d.bug.attachment:
        content = d.bug.attachment.encode("utf-8", errors="replace")
        await conn.execute(
            insert(attachments).values(
                project_id=task.project_id,
                task_id=task.id,
                bug_id=row["id"],
                filename=f"{d.bug.source_stage}-output.txt",
                content_type="text/plain; charset=utf-8",
                size=len(content),
                content=content,
                created_by=actor[:100],
            )
        )
    for filename, content_type, data in d.bug.files:
        await conn.execute(
            insert(attachments).values(
                project_id=task.project_id,
                task_id=task.id,
                bug_id=row["id"],
                filename=filename[:255],
                content_type=content_type[:100],
                size=len(data),
                content=data,
                created_by=actor[:100],
            )
        )
    slug = (await ctx.project(conn, task.project_id)).slug
    uow.emit(
        BugCreated(
            project=slug, task_key=task.task_key, actor=actor, bug=ctx.bug_snapshot(row, task.task_key)
        )
    )
    return key


async def _create_children(
    uow: UnitOfWork, ctx: Context, idea: TaskRow, plan: tuple[PlannedTask, ...], now: datetime
) -> list[TaskRow]:
    """The PM's breakdown as draft tasks of the idea; depends_on indexes become blocked_by ids."""
    conn = uow.conn
    n = len(plan)
    first = await repo.next_numbers(conn, idea.project_id, "next_task_number", n)
    ids = await repo.reserve_task_ids(conn, n)
    rows = [
        {
            "id": ids[i],
            "project_id": idea.project_id,
            "task_key": repo.task_key(first + i),
            "title": p.title[:255],
            "description": p.description,
            "acceptance_criteria": list(p.acceptance_criteria),
            "current_stage": ENTRY_STAGE,
            "state": TaskState.DRAFT.value,
            "priority": p.priority,
            "blocked_by": [ids[j] for j in sorted(set(p.depends_on))],
            "parent_id": idea.id,
            "created_by": "agent:pm",
            "created_at": now,
            "updated_at": now,
        }
        for i, p in enumerate(plan)
    ]
    children = await repo.insert_tasks(conn, rows)
    ctx.remember(idea, *children)
    slug = (await ctx.project(conn, idea.project_id)).slug
    for c in children:
        uow.emit(
            TaskCreated(project=slug, task_key=c.task_key, actor="agent:pm", task=ctx.snapshot_cached(c))
        )
    return children


async def _follow_done(uow: UnitOfWork, ctx: Context, task: TaskRow, actor: str, now: datetime) -> None:
    """Dependencies start work by themselves, and an idea is done when all its tasks are."""
    conn = uow.conn
    for other, ready, _ in await repo.lock_and_read_followers(conn, task, ctx.pipeline.agent_stages):
        if other.state == TaskState.BLOCKED and task.id in other.blocked_by:
            d = machine.on_blockers_changed(other.facts(blockers_done=ready))
            if d is not None:
                await apply(uow, ctx, other, d, actor="system", now=now)
    if task.parent_id is not None:
        # After this commit, in a transaction of its own: it then sees every sibling that committed
        # before, so the last of them to commit finishes the idea, and siblings never wait for each
        # other's commit on the idea's row.
        uow.follow_ups.append(partial(finish_idea_if_done, ctx=ctx, idea_id=task.parent_id))


async def finish_idea_if_done(uow: UnitOfWork, *, ctx: Context, idea_id: int) -> bool:
    """Move the idea to done when it waits for its tasks and all of them are done (or cancelled).
    Reads without a lock first (most tasks are not their idea's last); locks and reads again only
    when it may be finished. True when it was finished here."""
    if not await repo.idea_may_be_finished(uow.conn, idea_id):
        return False
    for idea, _, child_states in await repo.lock_and_read(uow.conn, [idea_id]):
        if idea.state == TaskState.WAITING_SUBTASKS and machine.idea_finished(child_states):
            await apply(uow, ctx, idea, machine.on_idea_finished(idea.facts()), actor="system", now=utcnow())
            return True
    return False
