"""Backends that run each command as a host process tree: `bubblewrap` (namespaces) and `none`.

Each `run` is one process group (a new session) whose stdout and stderr are read as they come; when
the command ends, or its time is up, the whole group is killed, so nothing it started in the
background outlives it. `none` is no sandbox: it only gives the command a fresh temporary HOME, a
minimal environment and its own process group; the runner warns about it on every job.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from wf_common.config import SandboxConfig

from wf_agent_runner.sandbox.base import (
    TIMEOUT,
    LineCallback,
    RunOutcome,
    Sandbox,
    StreamCapture,
    sandbox_env,
)

DRAIN_SECONDS = 1.0  # after the group is killed, how long to wait for the pipes to close
NONE_WARNING = (
    "sandbox.backend is 'none': agent commands (run tool, test command, scanners) run directly on this "
    "machine with your user's rights, only with a fresh HOME and a minimal environment. Install Docker or "
    "bubblewrap and set sandbox.backend: auto to confine them"
)


def signal_exit_code(returncode: int) -> int:
    """A shell's view of a process killed by signal N: 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


async def _pump(stream: asyncio.StreamReader | None, capture: StreamCapture) -> None:
    if stream is None:
        return
    while chunk := await stream.read(65536):
        await capture.feed(chunk)
    await capture.finish()


async def _ended(
    proc: asyncio.subprocess.Process,
    pumps: list[asyncio.Task[None]],
    timeout: float,  # noqa: ASYNC109 - the command's limit, not this call's
) -> bool:
    """Wait until the command's main process has exited (True) or its time is up (False).

    Normally its output closes as it exits. A background process may keep the pipes open, and
    `proc.wait()` waits for them too, so the exit itself is also watched (`returncode`)."""

    async def exited() -> None:
        delay = 0.005
        while proc.returncode is None:
            await asyncio.sleep(delay)
            delay = min(0.05, delay * 2)

    output_closed: asyncio.Future[Any] = asyncio.gather(*pumps)
    watch: asyncio.Future[Any] = asyncio.ensure_future(exited())
    try:
        done, _ = await asyncio.wait(
            [output_closed, watch], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if not done:
            return False
        if output_closed in done:  # the exit is a moment away
            try:
                async with asyncio.timeout(DRAIN_SECONDS):
                    await proc.wait()
            except TimeoutError:
                return proc.returncode is not None
        return True
    finally:
        watch.cancel()


class ProcessSandbox(Sandbox):
    """Runs `argv(command)` per call, in its own session; subclasses say how it is confined."""

    def __init__(self, config: SandboxConfig, worktree: Path) -> None:
        super().__init__(config.output_limit_chars)
        self.config = config
        self.worktree = worktree
        self.home = Path(tempfile.mkdtemp(prefix="wf-sandbox-home-"))
        self._running: set[asyncio.subprocess.Process] = set()
        self._frozen = False
        self._closed = False

    # -- what subclasses decide ------------------------------------------------------------------

    def argv(self, command: str) -> list[str]:
        return ["/bin/sh", "-c", command]

    def env(self) -> dict[str, str]:
        return sandbox_env(home=str(self.home), path=os.environ.get("PATH", "/usr/bin:/bin"))

    def cwd(self) -> Path:
        return self.worktree

    async def before_run(self, run_id: str) -> list[str]:
        """Commands to prefix (limits); called once per run."""
        return []

    async def after_run(self, run_id: str, outcome: RunOutcome) -> RunOutcome:
        return outcome

    def kill_run(self, run_id: str, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    # -- the contract ----------------------------------------------------------------------------

    async def run(
        self,
        command: str,
        timeout: float,  # noqa: ASYNC109 - the contract: the limit kills the command
        on_line: LineCallback | None = None,
    ) -> RunOutcome:
        if self._closed:
            return RunOutcome(None, "", "the sandbox is closed", limit_hit=None)
        run_id = f"wf-{os.getpid()}-{time.monotonic_ns()}"
        out, err = self.captures(on_line)
        started = time.monotonic()
        prefix = await self.before_run(run_id)
        try:
            proc = await asyncio.create_subprocess_exec(
                *prefix,
                *self.argv(command),
                cwd=self.cwd(),
                env=self.env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            outcome = RunOutcome(None, "", f"the sandbox could not start the command: {e}")
            return await self.after_run(run_id, outcome)
        self._running.add(proc)
        pumps = [asyncio.create_task(_pump(proc.stdout, out)), asyncio.create_task(_pump(proc.stderr, err))]
        limit_hit: str | None = None
        detail = ""
        try:
            if not await _ended(proc, pumps, timeout):
                limit_hit, detail = TIMEOUT, f"killed after {timeout:g}s"
            self.kill_run(run_id, proc)  # background processes die with the command
            with contextlib.suppress(TimeoutError):  # a daemon of `none` may keep the pipes open
                async with asyncio.timeout(DRAIN_SECONDS):
                    await proc.wait()
            _, pending = await asyncio.wait(pumps, timeout=DRAIN_SECONDS)
            for p in pending:
                p.cancel()
        except BaseException:
            self.kill_run(run_id, proc)
            for p in pumps:
                p.cancel()
            raise
        finally:
            self._running.discard(proc)
        code = None if limit_hit else signal_exit_code(proc.returncode if proc.returncode is not None else -9)
        outcome = RunOutcome.captured(code, out, err, started=started, limit_hit=limit_hit, detail=detail)
        return await self.after_run(run_id, outcome)

    async def freeze(self) -> None:
        self._frozen = True
        for proc in list(self._running):
            self.signal_tree(proc, signal.SIGSTOP)

    async def thaw(self) -> None:
        self._frozen = False
        for proc in list(self._running):
            self.signal_tree(proc, signal.SIGCONT)

    def signal_tree(self, proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        for pid in [proc.pid, *descendants(proc.pid)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in list(self._running):
            self.signal_tree(proc, signal.SIGCONT)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.home, ignore_errors=True)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (in any session), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class HostSandbox(ProcessSandbox):
    """Backend `none`: the host itself, with a fresh HOME and a minimal environment."""

    backend = "none"
    warning = NONE_WARNING
