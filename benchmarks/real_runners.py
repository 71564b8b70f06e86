"""hop_real_runners: the real agent-runner processes (`python -m wf_agent_runner`, as `wf start` runs
them) against the scripted model server answering at once (tests/fakes/ollama.py), and the real
orchestrator process.

The PM breaks an idea into a dependency chain (one task in flight at a time, so no queueing is
counted); the agents answer `finish(pass)` at once (DEV first writes one note, since a DEV that
changes nothing is not a pass) and the test command is `true`. A hop is timed on
this process's NATS connection: from a runner's Result on `wf.results.<stage>` to the next stage's
`execution.started` from a runner, on the hops with no human in between (dev→qa, qa→sec, sec→docs).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from wf_common import bus, subjects
from wf_common.commands import Approve, CreateProject, SubmitIdea
from wf_common.config import load_config
from wf_common.events import parse_event
from wf_common.jobs import Result

from benchmarks.pipeline import DIRECT_HOPS, command
from tests.e2e.scenario import ROLE_MARKERS
from tests.fakes.ollama import Reply, ScriptedOllama

MODEL = "qwen2.5-coder:0.5b"


def responder(tasks: int) -> Any:
    notes = itertools.count(1)  # next() is atomic under the GIL: the server's threads share it

    def answer(body: dict[str, Any]) -> Reply:
        if body.get("format"):  # the PM's structured breakdown
            return Reply.json(
                {
                    "tasks": [
                        {
                            "title": f"bench task {i}",
                            "description": "instant",
                            "acceptance_criteria": ["none"],
                            "priority": 5,
                            "depends_on": [i - 1] if i else [],
                        }
                        for i in range(tasks)
                    ]
                }
            )
        messages = body.get("messages") or []
        prompt = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") != "tool")
        if ROLE_MARKERS["dev"] in prompt and not any(m.get("role") == "tool" for m in messages):
            # A documentation file: DEV's change must not need DOCS to describe it.
            return Reply.tool("write_file", path=f"notes/bench-{next(notes)}.md", content="bench\n")
        return Reply.tool("finish", status="pass", summary="done")

    return answer


def runner_config(path: Path, llm_url: str, nats_config: Path) -> Path:
    data = yaml.safe_load(nats_config.read_text())
    data["llm_backend"] = {"host": llm_url, "model": MODEL, "timeout_seconds": 30}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@contextlib.contextmanager
def runners(config: Path, nats_url: str, logs: Path, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = []
    stages = ",".join(load_config(config).pipeline.agent_stages)
    for i in range(count):
        env = os.environ | {
            "WF_CONFIG": str(config),
            "WF_NATS_URL": nats_url,
            "WF_RUNNER_ID": f"bench-runner-{i + 1}",
            "WF_STAGES": stages,
            "WF_LOG_LEVEL": "WARNING",
        }
        out = (logs / f"runner-{i + 1}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "wf_agent_runner"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        )
    try:
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def make_workspace(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "README.md").write_text("bench\n")
    git = ["git", "-C", str(path), "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return path


async def measure(nats_url: str, workdir: Path, *, tasks: int, project: str = "hops") -> list[float]:
    nc = await bus.connect(nats_url, "bench-hops")
    result_at: dict[str, tuple[str, float]] = {}
    samples: list[float] = []
    done: set[str] = set()
    last_seen: dict[str, str] = {}  # task key → the last event it had: what a stalled run reports
    finished = asyncio.Event()
    gates: asyncio.Queue[str] = asyncio.Queue()
    gate_events: set[str] = set()  # an event published twice (the outbox's retry) is one gate
    failures: list[str] = []

    async def on_result(msg: Any) -> None:
        r = Result.model_validate_json(msg.data)
        result_at[r.task_key] = (r.stage, time.perf_counter())

    async def on_event(msg: Any) -> None:
        now = time.perf_counter()
        ev = parse_event(msg.data)
        if ev.task_key:
            last_seen[ev.task_key] = f"{ev.type} {getattr(ev, 'stage', '') or ''}".strip()
        if ev.type == "execution.started":
            prev = result_at.pop(ev.task_key or "", None)
            if prev and (prev[0], ev.stage) in DIRECT_HOPS:
                samples.append(now - prev[1])
        elif ev.type == "approval.requested" and ev.id not in gate_events:
            gate_events.add(ev.id)
            await gates.put(ev.task_key or "")
        elif ev.type == "task.state_changed" and ev.to_state == "done" and ev.task.parent:
            done.add(ev.task_key or "")
            if len(done) == tasks:
                finished.set()
        elif ev.type == "task.state_changed" and ev.to_state in ("failed", "needs_human"):
            failures.append(f"{ev.task_key} {ev.to_state}: {ev.task.status_reason}")
            finished.set()  # the chain cannot finish: say why now, not after the timeout

    subs = [
        await nc.subscribe(f"{subjects.RESULTS_PREFIX}.>", cb=on_result),
        await nc.subscribe(f"{subjects.EVENTS_PREFIX}.{project}.>", cb=on_event),
    ]

    async def approve_gates() -> None:
        while True:
            key = await gates.get()
            await command(nc, Approve(project=project, task_key=key, actor="bench"))

    approver = asyncio.create_task(approve_gates())
    waiting = asyncio.create_task(finished.wait())
    ws = make_workspace(workdir / project)
    await command(nc, CreateProject(slug=project, workspace=str(ws), test_command="true", actor="bench"))
    await command(nc, SubmitIdea(project=project, text="bench idea", actor="bench"))
    try:
        await asyncio.wait({waiting, approver}, timeout=600, return_when=asyncio.FIRST_COMPLETED)
        if approver.done():
            approver.result()  # an approval the orchestrator refused: its error, not a 600 s wait
        if failures:
            raise RuntimeError(f"the real-runner chain stopped: {'; '.join(failures)}")
        if not finished.is_set():
            pending = {k: v for k, v in last_seen.items() if k not in done}
            raise TimeoutError(
                f"the real-runner chain stalled: {len(done)} of {tasks} tasks done after 600 s;"
                f" the others' last events: {pending}"
            )
    finally:
        approver.cancel()
        waiting.cancel()
        for s in subs:
            await s.unsubscribe()
        await nc.close()
    return samples


def run(
    nats_url: str, workdir: Path, bench_config: Path, *, tasks: int, runner_count: int = 2
) -> list[float]:
    with ScriptedOllama(responder(tasks), models=(MODEL,)) as fake:
        cfg = runner_config(workdir / "runner-config.yaml", fake.url, bench_config)
        with runners(cfg, nats_url, workdir, runner_count):
            return asyncio.run(measure(nats_url, workdir, tasks=tasks))
