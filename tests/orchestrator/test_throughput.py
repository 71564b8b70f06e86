"""Many tasks at once with instant agents: every task goes through every stage exactly once, WIP limits
hold under concurrency, and the transition rate is printed (speed is measured by `make bench`, not asserted).

Bigger run, runner in its own process as in production:
    WF_BENCH_IDEAS=40 WF_BENCH_PROCESS=1 pytest tests/orchestrator/test_throughput.py -s
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from wf_common.db.tables import outbox
from wf_common.jobs import Breakdown

from tests.orchestrator.conftest import config
from tests.orchestrator.hub import Hub, eventually
from tests.orchestrator.instant_runner import Held, run_instant_runner

WORK = ["dev", "qa", "sec", "docs", "testing"]
PLAN = {
    "tasks": [
        {"title": f"Task {i}", "description": "d", "acceptance_criteria": ["ok"], "priority": 1 + i % 10}
        for i in range(10)
    ]
}

# Per child task: its executions (and distinct stages), and the stages its handoffs went to.
RUNS = (
    "SELECT count(*), count(DISTINCT e.stage) FROM executions e JOIN tasks t ON t.id = e.task_id"
    " WHERE t.parent_id IS NOT NULL GROUP BY t.id"
)
PATHS = (
    "SELECT array_agg(h.to_stage ORDER BY h.id) FROM handoffs h JOIN tasks t ON t.id = h.task_id"
    " WHERE t.parent_id IS NOT NULL GROUP BY t.id"
)


def pipeline(**dev: Any) -> dict[str, Any]:
    return {
        "max_parallel_per_project": 1000,
        "stages": [
            {"name": "pm", "agent": "pm", "gate": True, "wip_limit": 1000},
            *(
                {
                    "name": s,
                    "agent": s,
                    "wip_limit": 50,
                    **(dev if s == "dev" else {}),
                    **({"on_fail": "dev"} if s != "dev" else {}),
                }
                for s in WORK
            ),
        ],
    }


async def prepare(hub: Hub, tmp_path: Path, ideas: int) -> list[tuple[str, str]]:
    for p in range(4):
        await hub.project(f"p{p}", tmp_path / f"p{p}")
    for i in range(ideas):
        await hub.cmd("submit_idea", project=f"p{i % 4}", text=f"Idea {i}")
    gates = []
    for _ in range(ideas):
        job = await hub.next_job("pm")
        await hub.finish(job, breakdown=Breakdown.model_validate(PLAN))
        gates.append((job.project.slug, job.task.key))

    async def all_at_gate() -> bool:
        return await count(hub, "state = 'awaiting_approval'") == ideas

    await eventually(all_at_gate, within=60, what="every breakdown at its gate")
    return gates


async def count(hub: Hub, where: str) -> int:
    async with hub.db.connect() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM tasks WHERE {where}")) or 0)  # noqa: S608 - test SQL with trusted identifiers


async def test_many_tasks_flow_concurrently_each_exactly_once(make_hub: Any, tmp_path: Path) -> None:
    ideas = int(os.environ.get("WF_BENCH_IDEAS", "6"))
    # No sweep during the run: the ideas must be finished by their last tasks, not by its safety net.
    hub: Hub = await make_hub(config(pipeline=pipeline()), sweep_interval_seconds=3600)
    gates = await prepare(hub, tmp_path, ideas)
    assert hub.js is not None
    stop = asyncio.Event()
    proc = None
    if os.environ.get("WF_BENCH_PROCESS"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.orchestrator.instant_runner", hub.nats_url, ",".join(WORK)
        )
        runner = None
    else:
        runner = asyncio.create_task(run_instant_runner(hub.js, WORK, stop))
    began = time.monotonic()
    for slug, key in gates:
        await hub.cmd("approve", project=slug, task_key=key)
    total = ideas * len(PLAN["tasks"])

    async def all_done() -> bool:
        return await count(hub, "state = 'done' AND parent_id IS NOT NULL") == total

    await eventually(all_done, within=120, every=0.05, what=f"{total} tasks done")
    elapsed = time.monotonic() - began
    stop.set()
    if runner:
        await runner
    if proc:
        proc.kill()
        await proc.wait()
    rate = total * len(WORK) / elapsed
    print(f"\n{total} tasks x {len(WORK)} stages in {elapsed:.2f}s: {rate:.0f} stage transitions/s")

    async with hub.db.connect() as conn:
        runs = (await conn.execute(text(RUNS))).all()
        paths = (await conn.execute(text(PATHS))).scalars().all()
    assert len(runs) == total
    assert all(tuple(r) == (len(WORK), len(WORK)) for r in runs)
    assert len(paths) == total
    assert all(p == [*WORK, "done"] for p in paths)

    async def ideas_done() -> bool:
        return await count(hub, "state = 'done' AND parent_id IS NULL") == ideas

    async def outbox_empty() -> bool:
        async with hub.db.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(outbox)) == 0

    await eventually(ideas_done, what="every idea done")
    await eventually(outbox_empty, what="every message published and its outbox row deleted")


async def test_wip_limits_hold_while_results_arrive_concurrently(make_hub: Any, tmp_path: Path) -> None:
    hub: Hub = await make_hub(config(pipeline=pipeline(wip_limit=3)))
    ideas = 2
    gates = await prepare(hub, tmp_path, ideas)
    total = ideas * len(PLAN["tasks"])
    assert hub.js is not None
    stop, held = asyncio.Event(), Held(fill={"dev": (3, total)})
    runner = asyncio.create_task(run_instant_runner(hub.js, WORK, stop, hold=0.02, held=held))
    for slug, key in gates:
        await hub.cmd("approve", project=slug, task_key=key)

    async def all_done() -> bool:
        return await count(hub, "state = 'done' AND parent_id IS NOT NULL") == total

    await eventually(all_done, within=60, every=0.05, what=f"{total} tasks done")
    stop.set()
    await runner
    assert held.peak["dev"] == 3, "DEV ran as many jobs as its WIP limit allows, never more"
    assert all(n <= 50 for n in held.peak.values())
