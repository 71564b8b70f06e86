"""The per-project network opt-in (`sandbox.projects.<slug>.network: true`), on each real backend.

Off (the default) is the containment suite's `test_no_connection_to_the_hosts_loopback`. On:
- bubblewrap keeps the host's network namespace: the command reaches a listener on the host's
  loopback;
- docker attaches the container to `sandbox.docker_network`. `host` is tested end to end like
  bubblewrap. The default, `bridge`, is the engine's NAT network: where the engine has none (CI's
  private dockerd runs with --bridge=none, so that it never touches this machine's networking) the
  opt-in cannot be honoured and the job is refused with what to set, instead of silently running
  offline; where it has one, the container gets an interface besides loopback. Real egress through a
  bridge (NAT, DNS, the internet) is not tested: no test engine here may create a bridge and no
  outside network is reachable.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from wf_agent_runner.execution import JobExecutor
from wf_agent_runner.sandbox import SandboxError, open_sandbox
from wf_agent_runner.sandbox.docker import client
from wf_common.config import parse_config

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.helpers import MODEL
from tests.sandbox.conftest import LIMITS, require, sandbox_config
from tests.sandbox.test_containment import Listener, job_for, listener

__all__ = ["listener"]  # the fixture, used by name

LABELS = {"wf.project": "listsnap", "wf.task": "T-031", "wf.execution": "31", "wf.runner": "test"}
ONLINE = {"listsnap": {"network": True}}


def probe(port: int) -> str:
    return (
        'python3 -c "import socket; s = socket.socket(); s.settimeout(5); '
        f"s.connect(('127.0.0.1', {port})); print('CONNECTED'); s.close()\""
    )


def _engine_networks() -> set[str]:
    c = client()
    try:
        return {n.name for n in c.networks.list()}
    finally:
        c.close()


@pytest.mark.parametrize(
    ("backend_name", "overrides"),
    [("bubblewrap", {}), ("docker", {"docker_network": "host"})],
    ids=["bubblewrap", "docker-host"],
)
async def test_a_project_that_opts_in_reaches_the_hosts_network(
    backend_name: str, overrides: dict[str, Any], worktree: Path, listener: Listener
) -> None:
    require(backend_name)
    config = sandbox_config(backend_name, projects=ONLINE, **overrides)
    sb = await open_sandbox(config, worktree, LABELS, lifetime=120)
    try:
        out = await sb.run(probe(listener.port), 30)
    finally:
        await sb.close()
    assert out.exit_code == 0, out.report()
    assert "CONNECTED" in out.stdout
    assert listener.connected.is_set()


async def test_another_project_stays_offline_with_the_same_config(worktree: Path, listener: Listener) -> None:
    require("docker")
    config = sandbox_config("docker", projects=ONLINE, docker_network="host")
    labels = {**LABELS, "wf.project": "other"}
    sb = await open_sandbox(config, worktree, labels, lifetime=120)
    try:
        out = await sb.run(probe(listener.port) + "; ls /sys/class/net", 30)
    finally:
        await sb.close()
    assert "CONNECTED" not in out.stdout
    assert not listener.connected.is_set()
    assert out.stdout.split()[-1:] == ["lo"]  # loopback only


async def test_docker_bridge_opt_in_gets_a_network_or_a_clear_refusal(worktree: Path) -> None:
    require("docker")
    config = sandbox_config("docker", projects=ONLINE)  # docker_network: bridge (the default)
    if "bridge" not in _engine_networks():
        with pytest.raises(SandboxError) as err:
            await open_sandbox(config, worktree, LABELS, lifetime=120)
        message = str(err.value)
        assert "no network 'bridge'" in message
        assert "sandbox.docker_network" in message
        assert "sandbox.projects.listsnap.network" in message
        return
    sb = await open_sandbox(config, worktree, LABELS, lifetime=120)
    try:
        out = await sb.run("ls /sys/class/net", 30)
    finally:
        await sb.close()
    assert out.exit_code == 0, out.report()
    assert set(out.stdout.split()) - {"lo"}, out.report()


async def test_a_job_whose_network_cannot_be_given_ends_with_the_reason(
    worktree: Path, fake: ScriptedOllama
) -> None:
    require("docker")
    missing = f"wf-no-such-net-{uuid.uuid4().hex[:6]}"
    config = parse_config(
        {
            "llm_backend": {"host": fake.url, "model": MODEL, "timeout_seconds": 20},
            "sandbox": {"backend": "docker", **LIMITS, "docker_network": missing, "projects": ONLINE},
        }
    )
    fake.queue(Reply.tool("run", command="echo hi"), Reply.tool("finish", status="pass", summary="ok"))
    ex = JobExecutor(config, None, runner_id=f"net-{uuid.uuid4().hex[:6]}", test_timeout=30)
    outcome = await ex.execute(job_for(worktree, 171), 1)
    assert outcome.result is not None
    assert outcome.result.error is not None
    assert outcome.result.error.kind == "sandbox"
    assert missing in outcome.result.error.message
    assert not outcome.result.error.retryable
