"""Budgets: per-task and per-project caps on tokens and money (config `cost.budgets`).

A task whose own executions, or whose project's executions, have used up a budget gets no new job:
the dispatcher calls `hold_over_budget` on the tasks it is about to start, and those over a cap go to
needs_human with a reason that names the budget, what was used and how to go on. Work already
running finishes (its tokens are spent); nothing is cancelled.

The sums read the generated ledger columns of `executions` (migration 0006). With no budget
configured, `hold_over_budget` costs nothing (no query).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.config import BudgetConfig
from wf_common.jobs import utcnow
from wf_common.states import TaskState

from wf_orchestrator.pipeline.model import Decision, Place
from wf_orchestrator.tasks import transitions
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.tasks.rows import TaskRow
from wf_orchestrator.uow import UnitOfWork

log = logging.getLogger(__name__)

_SPENT = text(
    """
SELECT t.id AS task_id,
  coalesce(sum(e.prompt_tokens + e.completion_tokens), 0) AS task_tokens,
  coalesce(sum(e.cost_usd), 0) AS task_usd,
  max(p.tokens) AS project_tokens, max(p.usd) AS project_usd
FROM tasks t
LEFT JOIN executions e ON e.task_id = t.id
CROSS JOIN LATERAL (
  SELECT coalesce(sum(x.prompt_tokens + x.completion_tokens), 0) AS tokens,
         coalesce(sum(x.cost_usd), 0) AS usd
  FROM executions x JOIN tasks xt ON xt.id = x.task_id WHERE xt.project_id = t.project_id
) p
WHERE t.id = ANY(CAST(:ids AS integer[]))
GROUP BY t.id
"""
)


@dataclass(frozen=True)
class Spent:
    task_tokens: int
    task_usd: float
    project_tokens: int
    project_usd: float


def any_budget(b: BudgetConfig) -> bool:
    return any(v is not None for v in (b.task_tokens, b.task_usd, b.project_tokens, b.project_usd))


def exceeded(b: BudgetConfig, spent: Spent) -> str | None:
    """Why no new work may start, or None. Names the budget and the setting to raise."""
    checks: list[tuple[str, float | int | None, float | int, str]] = [
        ("task token budget", b.task_tokens, spent.task_tokens, "cost.budgets.task_tokens"),
        ("task money budget", b.task_usd, spent.task_usd, "cost.budgets.task_usd"),
        ("project token budget", b.project_tokens, spent.project_tokens, "cost.budgets.project_tokens"),
        ("project money budget", b.project_usd, spent.project_usd, "cost.budgets.project_usd"),
    ]
    for name, cap, used, setting in checks:
        if cap is not None and used >= cap:
            shown = f"${used:.4f} of ${cap:.2f}" if "money" in name else f"{used:,} tokens of {cap:,}"
            return f"{name} reached: {shown} used; raise {setting} in config.yaml to let it go on"
    return None


async def spent(conn: AsyncConnection, task_ids: list[int]) -> dict[int, Spent]:
    rows = await conn.execute(_SPENT, {"ids": task_ids})
    return {
        r.task_id: Spent(int(r.task_tokens), _f(r.task_usd), int(r.project_tokens or 0), _f(r.project_usd))
        for r in rows
    }


def _f(v: Decimal | float | None) -> float:
    return float(v or 0)


async def over_budget(conn: AsyncConnection, budgets: BudgetConfig, task_ids: list[int]) -> dict[int, str]:
    """Task id -> reason, for the tasks among `task_ids` that a budget stops."""
    if not any_budget(budgets) or not task_ids:
        return {}
    reasons = {}
    for tid, s in (await spent(conn, task_ids)).items():
        why = exceeded(budgets, s)
        if why is not None:
            reasons[tid] = why
    return reasons


async def hold_over_budget(
    uow: UnitOfWork, ctx: Context, chosen: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The dispatcher's hook: of the task rows about to be started, those within budget; the others
    are moved to needs_human (in the caller's transaction) with the reason."""
    reasons = await over_budget(uow.conn, ctx.budgets, [int(r["id"]) for r in chosen])
    if not reasons:
        return chosen
    now = utcnow()
    for r in chosen:
        why = reasons.get(int(r["id"]))
        if why is None:
            continue
        log.info("task %s held: %s", r["task_key"], why)
        decision = Decision(place=Place(r["current_stage"], TaskState.NEEDS_HUMAN, why))
        await transitions.apply(uow, ctx, TaskRow.of(r), decision, actor="system", now=now)
    return [r for r in chosen if int(r["id"]) not in reasons]
