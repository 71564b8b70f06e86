"""Choosing a backend (`sandbox.backend`) and making a job's sandbox."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from wf_common.config import SandboxConfig

from wf_agent_runner.sandbox import bubblewrap, docker
from wf_agent_runner.sandbox.base import LineCallback, RunOutcome, Sandbox, SandboxError
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
            raise SandboxError(
                f"sandbox.backend is bubblewrap but `bwrap` is not on PATH; {bubblewrap.INSTALL_HINT}"
            )
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
    worktree = Path(await asyncio.to_thread(os.path.realpath, worktree_path))
    project = config.for_project(labels.get("wf.project", ""))
    if chosen == "docker":
        sandbox = docker.DockerSandbox(
            config, worktree, labels, image=project.image or config.image, network=project.network,
            lifetime=lifetime,
        )  # fmt: skip
        try:
            await sandbox.start()
        except BaseException:
            await sandbox.close()  # its engine client, and a container that did start
            raise
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


class LazySandbox(Sandbox):
    """A job's sandbox, opened on its first command: agents that run nothing (PM, DOCS) cost nothing."""

    def __init__(
        self, config: SandboxConfig, worktree: str | Path, labels: dict[str, str], *, backend: str,
        lifetime: float,
    ) -> None:  # fmt: skip
        super().__init__(config.output_limit_chars)
        self.config = config
        self.worktree = worktree
        self.labels = labels
        self.backend = backend
        self.lifetime = lifetime
        self.warning = HostSandbox.warning if backend == "none" else None
        self.inner: Sandbox | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    async def _open(self) -> Sandbox:
        async with self._opening:
            if self._closed:
                raise SandboxError("the job's sandbox is closed")
            if self.inner is None:
                self.inner = await open_sandbox(
                    self.config, self.worktree, self.labels, backend=self.backend, lifetime=self.lifetime
                )
            return self.inner

    async def run(
        self,
        command: str,
        timeout: float,  # noqa: ASYNC109 - the contract: the limit kills the command
        on_line: LineCallback | None = None,
    ) -> RunOutcome:
        return await (await self._open()).run(command, timeout, on_line)

    async def freeze(self) -> None:
        if self.inner is not None:
            await self.inner.freeze()

    async def thaw(self) -> None:
        if self.inner is not None:
            await self.inner.thaw()

    async def close(self) -> None:
        async with self._opening:
            self._closed = True
            if self.inner is not None:
                await self.inner.close()
