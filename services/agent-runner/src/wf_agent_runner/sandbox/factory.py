"""Choosing a backend (`sandbox.backend`) and making a job's sandbox."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from wf_common.config import SandboxConfig

from wf_agent_runner.sandbox import bubblewrap, docker
from wf_agent_runner.sandbox.base import Sandbox, SandboxError
from wf_agent_runner.sandbox.bubblewrap import BubblewrapSandbox
from wf_agent_runner.sandbox.process import HostSandbox

log = logging.getLogger(__name__)

NOTHING_FOUND = (
    "no sandbox is available for agent commands: no Docker engine answers and bubblewrap is not "
    f"installed. To run agent jobs, {docker.INSTALL_HINT}, or {bubblewrap.INSTALL_HINT}. "
    "(sandbox.backend: none runs agent commands unconfined on this machine; only set it if you accept that.)"
)


def resolve_backend(config: SandboxConfig) -> str:
    """The backend to use: the configured one, or for `auto` docker, else bubblewrap; SandboxError
    (with how to install either) when the chosen one is not there."""
    wanted = config.backend
    if wanted == "none":
        return "none"
    if wanted == "docker":
        docker.client().close()  # SandboxError with the install hint when no engine answers
        return "docker"
    if wanted == "bubblewrap":
        if not bubblewrap.available():
            raise SandboxError(f"sandbox.backend is bubblewrap but `bwrap` is not on PATH; {bubblewrap.INSTALL_HINT}")
        return "bubblewrap"
    if docker.engine_answers():
        return "docker"
    if bubblewrap.available():
        return "bubblewrap"
    raise SandboxError(NOTHING_FOUND)


async def open_sandbox(
    config: SandboxConfig,
    worktree_path: str | Path,
    labels: dict[str, str],
    *,
    backend: str | None = None,
    lifetime: float = 3600.0,
) -> Sandbox:
    """A started sandbox for one job. `labels` carry wf.project / wf.task / wf.execution / wf.runner;
    `backend` is what resolve_backend chose (resolved here when not given)."""
    chosen = backend or await asyncio.to_thread(resolve_backend, config)
    worktree = Path(worktree_path).resolve()
    project = config.for_project(labels.get("wf.project", ""))
    if chosen == "docker":
        sandbox = docker.DockerSandbox(
            config, worktree, labels, image=project.image or config.image, network=project.network,
            lifetime=lifetime,
        )  # fmt: skip
        await sandbox.start()
        return sandbox
    if chosen == "bubblewrap":
        return BubblewrapSandbox(config, worktree, network=project.network)
    if chosen == "none":
        return HostSandbox(config, worktree)
    raise SandboxError(f"unknown sandbox backend {chosen!r}; use auto, docker, bubblewrap or none")


async def cleanup_leftovers(config: SandboxConfig, runner_id: str) -> int:
    """Remove containers a previous run of this runner (or a dead runner on this host) left behind."""
    if config.backend not in ("auto", "docker"):
        return 0
    try:
        removed = await asyncio.to_thread(docker.remove_leftovers, runner_id)
    except SandboxError:
        return 0
    if removed:
        log.info("removed %d sandbox container(s) left behind by an earlier runner", removed)
    return removed
