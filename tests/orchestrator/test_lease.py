"""Exactly one active orchestrator: a second one is a hot standby that takes over when the active one
is killed, and the pipeline goes on with nothing lost or applied twice. Real processes
(`python -m wf_orchestrator`, as `wf start` runs them with orchestrator.replicas: 2)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from wf_cli.embedded import NatsServer
from wf_common import subjects

from tests.orchestrator.conftest import config
from tests.orchestrator.hub import Hub, eventually


@pytest.fixture
async def two_orchestrators(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Hub, list[asyncio.subprocess.Process]]]:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"bus": {"ack_wait_seconds": 2, "max_deliver": 3}, "orchestrator": {"lease_ttl_seconds": 2}}
        )
    )
    env = {
        **os.environ,
        "WF_CONFIG": str(cfg),
        "WF_NATS_URL": nats_server.url,
        "WF_DATABASE_URL": database_url,
        "WF_MIGRATE_ON_START": "false",
        "WF_SWEEP_INTERVAL_SECONDS": "0.2",
    }
    procs = []
    logs = []
    for i in range(2):
        log = (tmp_path / f"orchestrator-{i}.log").open("wb")
        logs.append(log)
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "wf_orchestrator", env=env, stdout=log, stderr=log
            )
        )
    # The test plays the runners and the CLI, against whichever orchestrator is active.
    hub = Hub(nats_server.url, database_url, config(orchestrator={"lease_ttl_seconds": 2}))
    await hub.connect_only()
    try:
        yield hub, procs
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), 20)
            except TimeoutError:
                p.kill()
        for log in logs:
            log.close()
        await hub.close()


async def holder_pid(hub: Hub) -> int | None:
    assert hub.js is not None
    try:
        kv = await hub.js.key_value(subjects.LEASE_BUCKET)
        entry = await kv.get(subjects.LEASE_KEY)
    except Exception:  # noqa: BLE001 - no holder yet (not found), or the bucket is being made
        return None
    return int(json.loads(entry.value or b"{}")["pid"])


async def test_the_standby_takes_over_when_the_active_orchestrator_is_killed(
    two_orchestrators: tuple[Hub, list[asyncio.subprocess.Process]], tmp_path: Path
) -> None:
    hub, procs = two_orchestrators
    active_pid = await eventually(
        lambda: holder_pid(hub), within=90, what="an orchestrator to hold the lease"
    )
    [active] = [p for p in procs if p.pid == active_pid]
    [standby] = [p for p in procs if p.pid != active_pid]
    await eventually(lambda: _answers(hub), within=90, what="the active orchestrator to answer")
    await hub.project("demo", tmp_path / "demo")
    await hub.cmd("submit_idea", project="demo", text="An idea")
    pm = await hub.next_job("pm", within=10)
    await _waits_as_standby(tmp_path, procs.index(standby))  # not still starting up

    active.kill()  # SIGKILL: no clean hand-over, the lease has to expire
    await active.wait()
    await hub.breakdown(
        pm, {"title": "Child", "description": "d", "acceptance_criteria": ["ok"], "priority": 5}
    )
    # The standby applies the result the active one never saw, and takes commands.
    await hub.wait_state("T-001", "pm", "awaiting_approval", within=60)
    assert await holder_pid(hub) == standby.pid
    await hub.cmd("approve", project="demo", task_key="T-001")
    dev = await hub.next_job("dev", within=10)
    assert dev.task.key == "T-002"
    await hub.finish(dev)
    await hub.wait_state("T-002", "qa", "running")
    assert standby.returncode is None
    # Nothing applied twice: one execution per stage, one handoff per move.
    assert [e["stage"] for e in await hub.executions("T-001")] == ["pm"]
    assert await hub.path("T-002") == [("backlog", "dev"), ("dev", "qa")]
    assert len(hub.events_of("task.created", "T-002")) <= 1


async def test_a_standby_does_nothing_while_the_active_one_runs(
    two_orchestrators: tuple[Hub, list[asyncio.subprocess.Process]], tmp_path: Path
) -> None:
    hub, procs = two_orchestrators
    active_pid = await eventually(
        lambda: holder_pid(hub), within=90, what="an orchestrator to hold the lease"
    )
    await eventually(lambda: _answers(hub), within=90, what="the active orchestrator to answer")
    [standby] = [p for p in procs if p.pid != active_pid]
    log_file = await _waits_as_standby(tmp_path, procs.index(standby))
    assert "orchestrator ready" not in log_file.read_text()
    assert standby.returncode is None


async def _waits_as_standby(tmp_path: Path, index: int) -> Path:
    """The standby's log, once it says it waits (it may still be starting up when the active one
    already answers)."""
    log_file = tmp_path / f"orchestrator-{index}.log"

    async def says_standby() -> bool:
        return "standby" in log_file.read_text()

    await eventually(says_standby, within=90, what="the standby to say so", every=0.2)
    return log_file


async def _answers(hub: Hub) -> bool:
    try:
        await hub.cmd("ping")
    except Exception:  # noqa: BLE001 - no responder yet
        return False
    return True
