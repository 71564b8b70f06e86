"""What the pages show, shaped from the database and the bus; the templates only lay it out.

A card's column is its stage, except that tasks needing a human or failed get their own columns
(`needs-human`, `failed`), and cancelled ones are not shown. The activity indicator starts from the
task's state (and the pause in effect for it: everything, its project or itself) and the pages'
ES module refines it from live events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import Integer, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.config import WorkflowConfig
from wf_common.db.tables import bugs, executions, tasks
from wf_common.events import TaskSnapshot
from wf_common.pauses import PauseState
from wf_common.subjects import EVENTS_STREAM

from wf_board_api.projects.service import require_project_id

NEEDS_HUMAN = "needs-human"
FAILED = "failed"
HIDDEN_STATES = frozenset({"cancelled"})

ACTIVITY = {
    "running": ("thinking", "thinking"),
    "awaiting_approval": ("approval", "waiting for approval"),
    "needs_human": ("human", "needs a human"),
    "failed": ("failed", "failed"),
    "blocked": ("blocked", "blocked"),
    "draft": ("draft", "draft: waiting for the breakdown's approval"),
}


@dataclass
class Badges:
    open_bugs: int = 0
    failed_checks: int = 0
    tokens: int = 0


@dataclass
class Card:
    task: TaskSnapshot
    column: str
    agent: str | None
    activity: str | None
    activity_label: str | None
    badges: Badges


@dataclass
class ColumnView:
    name: str
    cards: list[Card] = field(default_factory=list)


@dataclass
class BoardView:
    project: str
    columns: list[ColumnView]
    paused: bool
    last_event_id: int
    counts: dict[str, int]
    # The columns a card can be asked to move to (by drag or the keyboard's "Move to"): the stages.
    stages: list[str] = field(default_factory=list)


def column_of(task: TaskSnapshot) -> str:
    if task.state == "needs_human":
        return NEEDS_HUMAN
    if task.state == "failed":
        return FAILED
    return task.stage


def columns_for(stages: Sequence[str]) -> list[str]:
    return [*stages, NEEDS_HUMAN, FAILED]


# What a card says when a pause holds its work, by the pause's scope (the widest one wins).
PAUSED_LABELS = {"global": "paused", "project": "paused (project)", "task": "paused (task)"}


def make_card(task: TaskSnapshot, workflow: WorkflowConfig, badges: Badges, *, pauses: PauseState) -> Card:
    stage = workflow.pipeline.stage(task.stage)
    agent = stage.agent if stage is not None else None
    activity, label = ACTIVITY.get(task.state, (None, None))
    scope = pauses.scope_for(task.project, task.key)
    if scope is not None and task.state in ("running", "queued"):
        activity, label = "paused", PAUSED_LABELS[scope]
    return Card(task, column_of(task), agent, activity, label, badges)


async def badges_for(
    conn: AsyncConnection, project: str, keys: Sequence[str] | None = None
) -> dict[str, Badges]:
    """Open bugs, failed checks (executions whose verdict was fail) and tokens per task key."""
    project_id = await require_project_id(conn, project)
    where = [tasks.c.project_id == project_id]
    if keys is not None:
        where.append(tasks.c.task_key.in_(list(keys)))
    result: dict[str, Badges] = {}
    bug_rows = await conn.execute(
        select(tasks.c.task_key, func.count())
        .select_from(bugs.join(tasks, bugs.c.task_id == tasks.c.id))
        .where(*where, bugs.c.status == "open")
        .group_by(tasks.c.task_key)
    )
    for key, n in bug_rows.all():
        result.setdefault(key, Badges()).open_bugs = int(n)
    tokens = func.coalesce(cast(executions.c.usage["prompt_tokens"].astext, Integer), 0) + func.coalesce(
        cast(executions.c.usage["completion_tokens"].astext, Integer), 0
    )
    exec_rows = await conn.execute(
        select(
            tasks.c.task_key,
            func.count().filter(executions.c.result_status == "fail"),
            func.coalesce(func.sum(tokens), 0),
        )
        .select_from(executions.join(tasks, and_(executions.c.task_id == tasks.c.id)))
        .where(*where)
        .group_by(tasks.c.task_key)
    )
    for key, failed, spent in exec_rows.all():
        badge = result.setdefault(key, Badges())
        badge.failed_checks = int(failed)
        badge.tokens = int(spent)
    return result


def board_view(
    project: str,
    snapshots: Sequence[TaskSnapshot],
    stages: Sequence[str],
    workflow: WorkflowConfig,
    badges: Mapping[str, Badges],
    *,
    pauses: PauseState,
    last_event_id: int,
) -> BoardView:
    names = columns_for(stages)
    columns = {n: ColumnView(n) for n in names}
    order = list(names)
    for task in snapshots:
        if task.state in HIDDEN_STATES:
            continue
        card = make_card(task, workflow, badges.get(task.key, Badges()), pauses=pauses)
        if card.column not in columns:
            columns[card.column] = ColumnView(card.column)
            order.insert(len(order) - 2, card.column)
        columns[card.column].cards.append(card)
    return BoardView(
        project=project,
        columns=[columns[n] for n in order],
        paused=pauses.paused,
        last_event_id=last_event_id,
        counts=counts(snapshots),
        stages=list(stages),
    )


def counts(snapshots: Sequence[TaskSnapshot]) -> dict[str, int]:
    """What the notification badges and the page title count."""
    return {
        "completed": sum(1 for t in snapshots if t.state == "done"),
        "failed": sum(1 for t in snapshots if t.state in ("failed", "needs_human")),
        "approval": sum(1 for t in snapshots if t.state == "awaiting_approval"),
    }


async def last_event_id(js: JetStreamContext) -> int:
    """The stream sequence of the newest event: a page rendered now resumes its live updates after it."""
    try:
        return int((await js.stream_info(EVENTS_STREAM)).state.last_seq)
    except (NotFoundError, nats.errors.Error):
        return 0
