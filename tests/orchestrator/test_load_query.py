"""The count of jobs running now (the dispatcher's WIP and per-project load, the hop's guard) on a real
PostgreSQL whose statistics are stale the way a board makes them: analyzed while nothing ran, then
hundreds of tasks running. It must count the right jobs and read each active job once, not loop over
every running task for each of them (that cost each hop about 40 ms at 300 tasks in `make bench`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from wf_orchestrator.dispatch import _LOAD
from wf_orchestrator.hop import HOP_SESSION, HopConnection
from wf_orchestrator.tasks.sql import ACTIVE_JOBS

TASKS = 600
STAGES = ("dev", "qa", "sec", "docs")
# The hop's guard: the jobs running at the stage it moves a task to.
AT_STAGE = text(
    "SELECT count(*) FROM (ACTIVE_JOBS) a WHERE a.stage = 'qa' AND a.project_id IS NOT NULL".replace(
        "ACTIVE_JOBS", ACTIVE_JOBS
    )
)


@pytest.fixture
async def stale(database_url: str) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    async with engine.connect() as conn:
        await conn.execute(
            text(
                "INSERT INTO projects (slug, name, workspace, test_command)"
                " VALUES ('a', 'a', '/srv/a', 'true'), ('b', 'b', '/srv/b', 'true')"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO tasks (project_id, task_key, title, state, current_stage)"
                " SELECT (SELECT min(id) FROM projects) + i % 2, 'T-' || i, 't', 'done',"
                " (ARRAY['dev', 'qa', 'sec', 'docs'])[1 + i % 4] FROM generate_series(1, :n) i"
            ),
            {"n": TASKS},
        )
        await conn.execute(
            text(
                "INSERT INTO executions (task_id, agent_id, stage, attempt, idempotency_key, status)"
                " SELECT t.id, (SELECT min(id) FROM agents), t.current_stage, 1, 'k' || t.id, 'completed'"
                " FROM tasks t"
            )
        )
        await conn.execute(
            text("UPDATE tasks t SET current_execution_id = e.id FROM executions e WHERE e.task_id = t.id")
        )
        await conn.commit()
        await conn.execute(text("ANALYZE"))  # what autovacuum saw: nothing running
        await conn.execute(text("UPDATE tasks SET state = 'running'"))
        await conn.execute(text("UPDATE executions SET status = 'running'"))
        # Not jobs running now: a paused task's execution, and an execution its task moved on from.
        await conn.execute(text("UPDATE tasks SET state = 'paused' WHERE task_key = 'T-2'"))
        await conn.execute(
            text(
                "INSERT INTO executions (task_id, agent_id, stage, attempt, idempotency_key, status)"
                " SELECT id, (SELECT min(id) FROM agents), 'qa', 2, 'stale', 'pending'"
                " FROM tasks WHERE task_key = 'T-5'"
            )
        )
        await conn.commit()
        yield conn
    await engine.dispose()


async def _buffers(conn: AsyncConnection, statement: Any) -> int:
    plan = (
        await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement.text}"))
    ).scalar_one()
    top = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


async def test_running_jobs_are_counted_right_and_read_once_with_stale_statistics(
    stale: AsyncConnection,
) -> None:
    load = {(r.project_id, r.current_stage): r.n for r in await stale.execute(_LOAD)}
    projects = sorted({p for p, _ in load})
    expected: dict[tuple[int, str], int] = {}
    for i in range(1, TASKS + 1):
        if i == 2:
            continue  # paused
        key = (projects[0] + i % 2, STAGES[i % 4])
        expected[key] = expected.get(key, 0) + 1
    assert load == expected  # T-5's second execution is not its current one: not counted
    assert (await stale.execute(AT_STAGE)).scalar_one() == sum(
        n for (_, s), n in expected.items() if s == "qa"
    )

    active = TASKS + 1
    for statement in (_LOAD, AT_STAGE):
        # Each active execution's index entry and row, and its task by primary key (twice for the
        # load: its filter and its group): about 9 pages a job. A join planned on the stale
        # statistics read every running task for each job: about 15 times as many.
        assert await _buffers(stale, statement) < 12 * active


@pytest.fixture
async def churned(database_url: str) -> str:
    """A busy board before autovacuum came by: 30 jobs running at a time, 3,000 finished since, each
    leaving a dead entry in the partial index of active executions."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    async with engine.connect() as conn:
        await conn.execute(text("ALTER TABLE executions SET (autovacuum_enabled = false)"))
        await conn.execute(
            text(
                "INSERT INTO projects (slug, name, workspace, test_command)"
                " VALUES ('a', 'a', '/srv/a', 'true')"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO tasks (project_id, task_key, title, state, current_stage)"
                " SELECT (SELECT min(id) FROM projects), 'T-' || i, 't', 'running', 'qa'"
                " FROM generate_series(1, 30) i"
            )
        )
        await conn.commit()
        for rnd in range(130):
            await conn.execute(  # by primary key, as results end them
                text(
                    "UPDATE executions SET status = 'completed'"
                    " WHERE id = ANY(ARRAY(SELECT current_execution_id FROM tasks))"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO executions (task_id, agent_id, stage, attempt, idempotency_key, status)"
                    " SELECT t.id, (SELECT min(id) FROM agents), 'qa', CAST(:n AS integer),"
                    " 'k' || t.id || '-' || CAST(:n AS text), 'running'"
                    " FROM tasks t"
                ),
                {"n": rnd + 1},
            )
            await conn.execute(
                text(
                    "UPDATE tasks t SET current_execution_id = e.id FROM executions e"
                    " WHERE e.idempotency_key = 'k' || t.id || '-' || :n"
                ),
                {"n": str(rnd + 1)},
            )
            await conn.commit()
            if rnd == 30:
                await conn.execute(text("ANALYZE"))  # a few dozen active: the planner's bitmap case
                await conn.commit()
    await engine.dispose()
    return database_url


# The part of ACTIVE_JOBS that reads the active executions' index (the rest reads each one's task).
ACTIVE_INDEX = "SELECT count(*) FROM executions e WHERE e.status IN ('pending', 'running') AND e.stage = 'qa'"


async def _count_buffers(driver: Any) -> int:
    plan = await driver.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {ACTIVE_INDEX}")
    top = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


async def test_the_hops_counts_pass_finished_jobs_once_not_every_hop(churned: str) -> None:
    """The planner picks a bitmap scan of the active executions' index once it expects a few dozen
    active jobs (it did in `make bench`); a bitmap scan visits every dead entry again at each count.
    The hop's session allows no bitmap scan: its index scan marks them dead, and the next count skips
    them."""
    engine = create_async_engine(churned, poolclass=NullPool)
    hop = HopConnection(engine)
    bitmap = await asyncpg.connect(churned.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await bitmap.execute("SET enable_indexscan = off")  # the plan the planner chose in the benchmark
        again = [await _count_buffers(bitmap) for _ in range(3)]
        assert min(again) > 50  # the finished executions' heap pages, at every count

        await hop._open()
        for name, value in HOP_SESSION.items():
            assert await hop._driver.fetchval(f"SHOW {name}") == value
        assert await hop._driver.fetchval(AT_STAGE.text) == 30  # the first count passes them once
        # Then the index pages and the 30 running ones' rows: fewer than the bitmap scan's pages at
        # every count (an index scan that did not mark them would visit all 3,000 finished rows).
        assert await _count_buffers(hop._driver) < min(again)
    finally:
        await bitmap.close()
        await hop.close()
        await engine.dispose()
