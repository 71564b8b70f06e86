"""`GET /api/stats`: the cost ledger and agent performance, from the executions the orchestrator wrote."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.board import rows
from tests.board.conftest import API_TOKEN
from tests.board.rows import T0

WF = Path(sys.executable).parent / "wf"


def usage(model: str, prompt: int, completion: int, cost: float | None = None) -> dict[str, object]:
    u: dict[str, object] = {
        "model": model,
        "llm_calls": 2,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
    }
    if cost is not None:
        u["cost_usd"] = cost
    return u


async def test_stats_sum_per_role_task_and_model(client: httpx.AsyncClient, db: AsyncConnection) -> None:
    p = await rows.project(db, "listsnap")
    other = await rows.project(db, "alpha")
    dev, qa = await rows.agent(db, "dev"), await rows.agent(db, "qa")
    t2 = await rows.task(db, p, "T-002", title="Add price parser")
    t9 = await rows.task(db, other, "T-009")
    done = {"status": "completed", "started_at": T0, "completed_at": T0 + timedelta(seconds=30)}
    await rows.execution(
        db, t2, dev, "dev", 1, result_status="pass", usage=usage("gpt-4o-mini", 1000, 200, 0.00027), **done
    )
    await rows.execution(
        db, t2, qa, "qa", 1, result_status="fail", usage=usage("qwen2.5-coder:7b", 500, 100), **done
    )
    late = {**done, "completed_at": T0 + timedelta(seconds=90)}
    await rows.execution(
        db, t2, dev, "dev", 2, result_status="pass", usage=usage("gpt-4o-mini", 3000, 600, 0.00081), **late
    )
    await rows.execution(
        db, t9, dev, "dev", 1, result_status="pass", usage=usage("gpt-4o-mini", 7, 7, 1.0), **done
    )
    running = await rows.execution(
        db, t2, qa, "qa", 2, status="running", runner_id="runner-1", started_at=T0 + timedelta(minutes=5)
    )
    now = datetime.now(UTC)
    await rows.handoff(db, t2, "dev", "qa", created_at=now)
    await rows.handoff(db, t2, "qa", "dev", created_at=now)

    resp = await client.get("/api/stats", params={"project": "listsnap"})

    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"roles", "tasks", "models", "throughput", "running"}
    assert body["roles"] == [
        {"role": "dev", "executions": 2, "avg_seconds": 60.0, "pass_rate": 1.0,
         "prompt_tokens": 4000, "completion_tokens": 800, "cost_usd": 0.00108},
        {"role": "qa", "executions": 1, "avg_seconds": 30.0, "pass_rate": 0.0,
         "prompt_tokens": 500, "completion_tokens": 100, "cost_usd": 0.0},
    ]  # fmt: skip
    assert body["tasks"] == [
        {"project": "listsnap", "key": "T-002", "title": "Add price parser", "executions": 3,
         "prompt_tokens": 4500, "completion_tokens": 900, "cost_usd": 0.00108, "seconds": 150.0},
    ]  # fmt: skip
    assert [(m["model"], m["executions"], m["cost_usd"]) for m in body["models"]] == [
        ("gpt-4o-mini", 2, 0.00108),
        ("qwen2.5-coder:7b", 1, 0.0),
    ]
    assert [t["transitions"] for t in body["throughput"]] == [2]
    assert body["running"] == [
        {"project": "listsnap", "key": "T-002", "stage": "qa", "execution_id": running,
         "runner_id": "runner-1", "started_at": "2025-03-01T12:05:00Z"},
    ]  # fmt: skip

    everything = (await client.get("/api/stats")).json()
    assert sum(t["executions"] for t in everything["tasks"]) == 4
    assert {m["model"]: m["cost_usd"] for m in everything["models"]}["gpt-4o-mini"] == 1.00108


async def test_stats_of_unknown_project_is_404(client: httpx.AsyncClient, db: AsyncConnection) -> None:
    resp = await client.get("/api/stats", params={"project": "nope"})
    assert resp.status_code == 404
    assert "nope" in resp.text


async def wf(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed `wf` command as a process (off the event loop that serves the board)."""
    env = {k: v for k, v in os.environ.items() if k != "WF_URL"}
    env["WF_TOKEN"] = API_TOKEN  # the CLI's way to the board's token (contract #1)
    return await asyncio.to_thread(
        subprocess.run, [str(WF), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


async def test_wf_stats_and_wf_show_print_the_ledger(live_url: str, db: AsyncConnection) -> None:
    p = await rows.project(db, "listsnap")
    dev = await rows.agent(db, "dev")
    t2 = await rows.task(db, p, "T-002", title="Add price parser")
    done = {"status": "completed", "started_at": T0, "completed_at": T0 + timedelta(seconds=42)}
    await rows.execution(
        db, t2, dev, "dev", 1, result_status="pass", usage=usage("gpt-4o-mini", 1200, 300, 0.25), **done
    )

    table = await wf("--url", live_url, "stats", "--project", "listsnap")
    assert table.returncode == 0, table.stderr
    dev_line = next(line for line in table.stdout.splitlines() if line.strip().startswith("dev"))
    assert dev_line.split() == ["dev", "1", "42.0s", "100%", "1200", "300", "$0.2500"]
    assert "gpt-4o-mini" in table.stdout
    assert "T-002" in table.stdout

    other = await rows.project(db, "alpha")
    t9 = await rows.task(db, other, "T-009")
    await rows.execution(
        db, t9, dev, "dev", 1, result_status="fail", usage=usage("gpt-4o-mini", 10, 5, 1.5), **done
    )
    everything = await wf("--url", live_url, "stats")
    projects = everything.stdout.split("Projects")[1].split("Tasks")[0]
    assert [line.split() for line in projects.strip().splitlines()[1:]] == [
        ["alpha", "1", "42.0s", "15", "$1.5000"],
        ["listsnap", "1", "42.0s", "1500", "$0.2500"],
    ]

    as_json = await wf("--url", live_url, "stats", "--json")
    assert json.loads(as_json.stdout)["models"][0]["cost_usd"] == 1.75

    shown = await wf("--url", live_url, "show", "T-002")
    assert shown.returncode == 0, shown.stderr
    assert "Cost: 1 execution, 1500 tokens (1200 in, 300 out)" in shown.stdout
    assert "$0.2500" in shown.stdout

    unknown = await wf("--url", live_url, "stats", "--project", "nope")
    assert unknown.returncode != 0
    assert "nope" in unknown.stderr
