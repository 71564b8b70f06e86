"""SQL on the workflow tables (SQLAlchemy Core). Callers hold the transaction; functions named lock_*
take row locks (FOR UPDATE) so that the task's decision cannot race another writer's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Integer,
    RowMapping,
    and_,
    any_,
    bindparam,
    exists,
    func,
    insert,
    not_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.db.tables import handoffs, projects, tasks
from wf_common.states import TaskState

from wf_orchestrator.tasks.rows import ProjectRow, TaskRow

_blocker = tasks.alias("blocker")


def blockers_done_expr(blocked_by: Any) -> Any:
    """SQL: every task in `blocked_by` is done (true for an empty array)."""
    return not_(
        exists().where(and_(_blocker.c.id == func.any(blocked_by), _blocker.c.state != TaskState.DONE.value))
    )


async def project_by_slug(conn: AsyncConnection, slug: str) -> ProjectRow | None:
    row = (await conn.execute(select(projects).where(projects.c.slug == slug))).mappings().first()
    return ProjectRow.of(row) if row else None


# A task by its project's slug and its key, with its project's columns (p_*) and whether its
# blockers are done: one round trip where a project read and a task read were two.
_TASK_IN_PROJECT = (
    select(
        tasks,
        blockers_done_expr(tasks.c.blocked_by).label("blockers_done"),
        *(projects.c[c].label(f"p_{c}") for c in ("slug", "name", "workspace", "test_command")),
    )
    .select_from(tasks.join(projects, projects.c.id == tasks.c.project_id))
    .where(projects.c.slug == bindparam("slug"), tasks.c.task_key == bindparam("key"))
)
_LOCK_TASK_IN_PROJECT = _TASK_IN_PROJECT.with_for_update(of=tasks)


async def task_in_project(
    conn: AsyncConnection, slug: str, key: str, *, lock: bool
) -> tuple[ProjectRow, TaskRow, bool] | None:
    """The project `slug`, its task `key` (locked when `lock`) and whether the task's blockers are
    done; None when either does not exist (`project_by_slug` tells which)."""
    query = _LOCK_TASK_IN_PROJECT if lock else _TASK_IN_PROJECT
    row = (await conn.execute(query, {"slug": slug, "key": key})).mappings().first()
    if row is None:
        return None
    project = ProjectRow(
        row["project_id"], row["p_slug"], row["p_name"], row["p_workspace"], row["p_test_command"]
    )
    return project, TaskRow.of(row), bool(row["blockers_done"])


async def project_workspaces(conn: AsyncConnection) -> dict[str, str]:
    """Every project's workspace → its slug."""
    rows = await conn.execute(select(projects.c.workspace, projects.c.slug))
    return {workspace: slug for workspace, slug in rows}


async def lock_task_by_key(conn: AsyncConnection, project_id: int, key: str) -> tuple[TaskRow, bool] | None:
    """The task and whether its blockers are done, locked."""
    query = (
        select(tasks, blockers_done_expr(tasks.c.blocked_by).label("blockers_done"))
        .where(tasks.c.project_id == project_id, tasks.c.task_key == key)
        .with_for_update(of=tasks)
    )
    row = (await conn.execute(query)).mappings().first()
    return (TaskRow.of(row), bool(row["blockers_done"])) if row else None


_LOCK_IDS = (
    select(tasks.c.id).where(tasks.c.id == any_(bindparam("ids"))).order_by(tasks.c.id).with_for_update()
)
_READ = select(
    tasks,
    blockers_done_expr(tasks.c.blocked_by).label("blockers_done"),
    select(func.array_agg(_blocker.c.state))
    .where(_blocker.c.parent_id == tasks.c.id)
    .scalar_subquery()
    .label("child_states"),
).where(tasks.c.id == any_(bindparam("ids")))


async def lock_tasks(conn: AsyncConnection, ids: Sequence[int]) -> list[tuple[TaskRow, bool]]:
    """Tasks by id, locked in id order (a fixed order keeps concurrent lockers from deadlocking)."""
    return [(t, ready) for t, ready, _ in await lock_and_read(conn, ids)]


async def lock_and_read(conn: AsyncConnection, ids: Sequence[int]) -> list[tuple[TaskRow, bool, list[str]]]:
    """Lock tasks, then read them with whether their blockers are done and their children's states.

    The read is a second statement on purpose: under READ COMMITTED it sees what a transaction we
    waited for committed (a blocker finishing at the same moment); the locking statement does not.
    """
    if not ids:
        return []
    ids = sorted(set(ids))
    await conn.execute(_LOCK_IDS, {"ids": ids})
    return await _read(conn, ids)


async def _read(conn: AsyncConnection, ids: Sequence[int]) -> list[tuple[TaskRow, bool, list[str]]]:
    rows = (await conn.execute(_READ, {"ids": ids})).mappings().all()
    return sorted(
        ((TaskRow.of(r), bool(r["blockers_done"]), list(r["child_states"] or [])) for r in rows),
        key=lambda x: x[0].id,
    )


# The blocked tasks waiting for a task that reached done, found and locked in id order (a fixed
# order, as in lock_tasks). Its parent is not among them: siblings finishing together would queue on
# its row lock until each other's commit; the idea is finished after the commit (finish_idea_if_done).
_LOCK_FOLLOWERS = (
    select(tasks.c.id)
    .where(
        # current_stage lets the (current_stage, state) index find the blocked tasks.
        tasks.c.current_stage == any_(bindparam("stages")),
        tasks.c.state == TaskState.BLOCKED.value,
        tasks.c.project_id == bindparam("project_id"),
        bindparam("task_id", type_=Integer) == any_(tasks.c.blocked_by),
    )
    .order_by(tasks.c.id)
    .with_for_update()
)


async def lock_and_read_followers(
    conn: AsyncConnection, task: TaskRow, stages: list[str]
) -> list[tuple[TaskRow, bool, list[str]]]:
    """`lock_and_read` of the blocked tasks waiting for `task` (which reached done), found and
    locked by one statement."""
    params = {"stages": stages, "project_id": task.project_id, "task_id": task.id}
    ids = list((await conn.execute(_LOCK_FOLLOWERS, params)).scalars())
    return await _read(conn, ids) if ids else []


# Whether an idea waits for its tasks and none of them is still open (no lock: see the caller).
_IDEA_FINISHED = select(
    tasks.c.state == TaskState.WAITING_SUBTASKS.value,
    ~exists().where(
        _blocker.c.parent_id == tasks.c.id,
        _blocker.c.state.not_in([TaskState.DONE.value, TaskState.CANCELLED.value]),
    ),
).where(tasks.c.id == bindparam("idea_id"))


async def idea_may_be_finished(conn: AsyncConnection, idea_id: int) -> bool:
    """The idea waits for its tasks and none is open, as last committed: a cheap read, no lock."""
    row = (await conn.execute(_IDEA_FINISHED, {"idea_id": idea_id})).first()
    return bool(row and row[0] and row[1])


async def blockers_done(conn: AsyncConnection, blocked_by: Sequence[int]) -> bool:
    if not blocked_by:
        return True
    pending = await conn.scalar(
        select(func.count()).where(
            tasks.c.id == any_(bindparam("ids")), tasks.c.state != TaskState.DONE.value
        ),
        {"ids": list(blocked_by)},
    )
    return not pending


async def update_task(conn: AsyncConnection, task_id: int, values: dict[str, Any]) -> TaskRow:
    row = (
        (await conn.execute(update(tasks).where(tasks.c.id == task_id).values(**values).returning(tasks)))
        .mappings()
        .one()
    )
    return TaskRow.of(row)


async def next_numbers(conn: AsyncConnection, project_id: int, column: str, n: int = 1) -> int:
    """Reserve `n` consecutive task or bug numbers of a project; returns the first."""
    col = projects.c[column]
    last = await conn.scalar(
        update(projects).where(projects.c.id == project_id).values({col: col + n}).returning(col)
    )
    if not (last is not None):
        raise RuntimeError("invariant broken: last is not None")
    return int(last) - n


def task_key(n: int) -> str:
    return f"T-{n:03d}"


def bug_key(n: int) -> str:
    return f"B-{n:03d}"


async def insert_tasks(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[TaskRow]:
    result = await conn.execute(insert(tasks).returning(tasks, sort_by_parameter_order=True), rows)
    return [TaskRow.of(r) for r in result.mappings().all()]


async def reserve_task_ids(conn: AsyncConnection, n: int) -> list[int]:
    """Ids for tasks about to be inserted, so blocked_by between them can be written in the insert."""
    seq = await conn.scalar(select(func.pg_get_serial_sequence("tasks", "id")))
    rows = await conn.execute(select(func.nextval(seq)).select_from(func.generate_series(1, n)))
    return [int(r[0]) for r in rows]


_PENDING_GATE_ID = (
    select(handoffs.c.id)
    .where(
        handoffs.c.task_id == bindparam("gate_task_id"),
        handoffs.c.requires_approval.is_(True),
        handoffs.c.approved_at.is_(None),
        handoffs.c.rejected_at.is_(None),
    )
    .order_by(handoffs.c.id.desc())
    .limit(1)
    .scalar_subquery()
)
_DECIDE_PENDING_GATE = {
    approved: update(handoffs)
    .where(handoffs.c.id == _PENDING_GATE_ID)
    .values(
        {
            handoffs.c[f"{verb}_at"]: bindparam("at"),
            handoffs.c[f"{verb}_by"]: bindparam("by"),
            handoffs.c.decision_note: bindparam("note"),
        }
    )
    .returning(handoffs)
    for approved, verb in ((True, "approved"), (False, "rejected"))
}


async def decide_pending_gate(
    conn: AsyncConnection, task_id: int, *, approved: bool, at: Any, by: str, note: str | None
) -> RowMapping | None:
    """The task's latest handoff that waits for a human decision, marked approved (or rejected) by
    `by` in the same round trip; None when the task has none. A caller whose decision then refuses
    (the task is not at a gate) raises, and the transaction rolls the mark back."""
    params = {"gate_task_id": task_id, "at": at, "by": by[:100], "note": note or None}
    row: RowMapping | None = (await conn.execute(_DECIDE_PENDING_GATE[approved], params)).mappings().first()
    return row


async def last_handoff_id(conn: AsyncConnection, task_id: int) -> int | None:
    query = select(handoffs.c.id).where(handoffs.c.task_id == task_id).order_by(handoffs.c.id.desc()).limit(1)
    return await conn.scalar(query)
