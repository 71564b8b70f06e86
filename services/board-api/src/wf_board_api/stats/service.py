"""Building the stats document."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wf_board_api.projects.service import require_project_id
from wf_board_api.stats import repository
from wf_board_api.stats.schemas import (
    HourThroughput,
    ModelStats,
    RoleStats,
    RunningExecution,
    Stats,
    TaskStats,
)

THROUGHPUT_HOURS = 24


def _plain(row: Any) -> dict[str, Any]:
    """Numerics (Decimal) as floats, rounded for display."""
    out = {}
    for k, v in dict(row).items():
        if k in ("avg_seconds", "seconds", "pass_rate") and v is not None:
            v = round(float(v), 3)
        elif k == "cost_usd":
            v = round(float(v or 0), 6)
        out[k] = v
    return out


async def stats(conn: AsyncConnection, *, project: str | None) -> Stats:
    pid = await require_project_id(conn, project) if project else None
    return Stats(
        roles=[RoleStats.model_validate(_plain(r)) for r in await repository.roles(conn, pid)],
        tasks=[TaskStats.model_validate(_plain(r)) for r in await repository.tasks(conn, pid)],
        models=[ModelStats.model_validate(_plain(r)) for r in await repository.models(conn, pid)],
        throughput=[
            HourThroughput.model_validate(dict(r))
            for r in await repository.throughput(conn, pid, THROUGHPUT_HOURS)
        ],
        running=[RunningExecution.model_validate(dict(r)) for r in await repository.running(conn, pid)],
    )
