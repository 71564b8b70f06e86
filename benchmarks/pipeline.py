"""(2) Orchestration overhead and (3) stage transitions per second, with instant scripted agents.

The real orchestrator runs as its own process (the same entry point `wf start` uses) on a real NATS
server and a real, durable PostgreSQL. This process plays every runner: it takes jobs from the stage
consumers and answers each with a `pass` Result at once, and plays the human at the gates.

Overhead = from a Result being published for a task to the next stage's Job for that task arriving
here, measured on the hops with no human in between (dev→qa, qa→sec, sec→docs) while only one job is
in flight (a dependency chain), so no queueing is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from wf_common import bus, subjects
from wf_common.commands import Approve, CommandReply, CreateProject, Ping, SubmitIdea
from wf_common.config import load_config
from wf_common.events import parse_event
from wf_common.jobs import Breakdown, Job, PlannedTask, Result
from wf_common.states import Verdict

DIRECT_HOPS = {("dev", "qa"), ("qa", "sec"), ("sec", "docs")}


def bench_config(path: Path) -> Path:
    stages = [s.model_dump() for s in load_config(None).pipeline.stages]
    for s in stages:
        s["wip_limit"] = 1000
    path.write_text(
        yaml.safe_dump(
            {"pipeline": {"stages": stages, "max_parallel_per_project": 1000}, "runner": {"count": 1}}
        ),
        encoding="utf-8",
    )
    return path


@dataclass
class InstantAgents:
    nc: Any
    js: Any
    tasks_per_idea: int
    chain: bool
    last_result_at: dict[str, tuple[str, float]] = field(default_factory=dict)
    overhead: list[float] = field(default_factory=list)
    jobs: int = 0

    async def handle(self, d: bus.Delivery) -> None:
        arrived = time.perf_counter()
        job = Job.model_validate_json(d.data)
        prev = self.last_result_at.pop(job.task.key, None)
        if prev and (prev[0], job.stage) in DIRECT_HOPS:
            self.overhead.append(arrived - prev[1])
        self.jobs += 1
        breakdown = None
        if job.stage == "pm":
            breakdown = Breakdown(
                tasks=[
                    PlannedTask(
                        title=f"bench task {i}",
                        description="instant",
                        acceptance_criteria=["none"],
                        priority=5,
                        depends_on=[i - 1] if self.chain and i else [],
                    )
                    for i in range(self.tasks_per_idea)
                ]
            )
        result = Result.answering(job, Verdict.PASS, "instant", breakdown=breakdown, runner_id="bench")
        self.last_result_at[job.task.key] = (job.stage, time.perf_counter())
        await bus.publish(
            self.js, subjects.result_subject(job.stage), result, msg_id=f"{job.idempotency_key}/result"
        )
        await d.ack()


async def command(nc: Any, cmd: Any) -> dict[str, Any]:
    raw = await bus.request(nc, subjects.command_subject(cmd.type), cmd, timeout=30)
    reply = CommandReply.model_validate_json(raw)
    if not reply.ok:
        raise RuntimeError(f"{cmd.type} refused: {reply.error}")
    return reply.data or {}


async def run(
    nats_url: str,
    database_url: str,
    workdir: Path,
    *,
    ideas: int,
    tasks_per_idea: int,
    chain: bool,
    project: str,
) -> tuple[InstantAgents, float, int]:
    """Submit ideas, approve everything, wait until every task is done. Returns (agents, seconds, moves)."""
    nc = await bus.connect(nats_url, f"bench-{project}")
    js = nc.jetstream()
    agents = InstantAgents(nc, js, tasks_per_idea, chain)
    stop = asyncio.Event()
    cfg = load_config(None)
    consumers = [
        asyncio.create_task(
            bus.consume(
                nc,
                js,
                stream=subjects.JOBS_STREAM,
                durable=subjects.job_consumer(stage),
                handler=agents.handle,
                stop=stop,
                batch=64,
                concurrency=64,
            )
        )
        for stage in cfg.pipeline.agent_stages
    ]
    done = 0
    moves = 0
    awaiting_breakdowns: asyncio.Queue[str] = asyncio.Queue()
    total = ideas * tasks_per_idea
    all_done = asyncio.Event()

    async def on_event(msg: Any) -> None:
        nonlocal done, moves
        ev = parse_event(msg.data)
        if ev.type == "task.moved":
            moves += 1
        elif ev.type == "approval.requested" and ev.stage == "deploy":
            await command(nc, Approve(project=project, task_key=ev.task_key, actor="bench"))
        elif ev.type == "approval.requested" and ev.stage == "pm":
            await awaiting_breakdowns.put(ev.task_key or "")
        elif ev.type == "task.state_changed" and ev.to_state == "done" and ev.task.parent:
            done += 1
            if done == total:
                all_done.set()

    sub = await nc.subscribe(f"{subjects.EVENTS_PREFIX}.{project}.>", cb=on_event)
    workspace = workdir / project
    await command(nc, CreateProject(slug=project, workspace=str(workspace), actor="bench"))
    for i in range(ideas):
        await command(nc, SubmitIdea(project=project, text=f"bench idea {i}", actor="bench"))
    keys = [await asyncio.wait_for(awaiting_breakdowns.get(), 120) for _ in range(ideas)]
    moves = 0
    began = time.perf_counter()
    for key in keys:
        await command(nc, Approve(project=project, task_key=key, actor="bench"))
    await asyncio.wait_for(all_done.wait(), timeout=900)
    elapsed = time.perf_counter() - began
    stop.set()
    await asyncio.gather(*consumers)
    await sub.unsubscribe()
    await nc.close()
    return agents, elapsed, moves


async def wait_ready(nats_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    nc = await bus.connect(nats_url, "bench-wait")
    try:
        deadline = time.monotonic() + 120  # a start on a loaded machine can take tens of seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the orchestrator exited at start; see {log}")
            with contextlib.suppress(Exception):
                await command(nc, Ping(actor="bench"))
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the orchestrator never answered ping; see {log}")
    finally:
        await nc.close()


@contextlib.contextmanager
def orchestrator(
    config: Path, nats_url: str, database_url: str, log: Path, timings: Path | None = None
) -> Any:
    env = os.environ | {
        "WF_CONFIG": str(config),
        "WF_NATS_URL": nats_url,
        "WF_DATABASE_URL": database_url,
        "WF_LOG_LEVEL": "WARNING",
    }
    if timings is not None:
        env["WF_TIMINGS_FILE"] = str(timings)
    subprocess.run([sys.executable, "-m", "wf_orchestrator", "migrate"], env=env, check=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wf_orchestrator"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            asyncio.run(wait_ready(nats_url, proc, log))
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=30)
