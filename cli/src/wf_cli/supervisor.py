"""Run services as child processes, restart them when they die, stop them in order.

    supervisor = Supervisor([ServiceSpec("orchestrator", [...], env, log_file)], RestartPolicy())
    await supervisor.start()      # every service spawned once
    ...
    await supervisor.stop()       # SIGTERM, up to `stop_timeout` s, then SIGKILL

A service that exits while the supervisor is not stopping is restarted after a delay that doubles
with each crash in a row (1 s, 2 s, 4 s ... capped at 30 s); a run of at least 60 s counts as healthy
and resets the delay. Output (stdout and stderr) goes to the service's log file, and each line is
passed to `echo` for a prefixed copy on the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

Echo = Callable[[str, str], None]  # (service name, one line of its output)


@dataclass(frozen=True)
class RestartPolicy:
    initial: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    # A run this long was healthy: the next crash starts the backoff again from `initial`.
    reset_after: float = 60.0

    def delay(self, crashes_in_a_row: int) -> float:
        """Seconds to wait before restart number `crashes_in_a_row` (1 = after the first crash)."""
        return float(min(self.cap, self.initial * self.factor ** max(crashes_in_a_row - 1, 0)))


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: Sequence[str]
    log_file: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path | None = None
    # Free-form facts for run.json (role, runner id...).
    info: Mapping[str, Any] = field(default_factory=dict)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn making the child get SIGTERM if the supervisor dies (Linux), so a `kill -9` of
    `wf start` leaves no orphaned services holding ports. Elsewhere leftovers are found via run.json."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child must only make one call
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: nobody will signal us
            os._exit(1)

    return preexec


class Service:
    def __init__(self, spec: ServiceSpec, policy: RestartPolicy, echo: Echo | None) -> None:
        self.spec = spec
        self.policy = policy
        self._echo = echo
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at: float = 0.0
        self.started_wall: str | None = None
        self.restarts = 0
        self.crashes_in_a_row = 0
        self.last_exit: int | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    async def spawn(self) -> None:
        self.spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(self.spec.env),
            cwd=self.spec.cwd,
            # Own session: a Ctrl-C in the terminal reaches only the supervisor, which then stops
            # everything in order instead of every process dying at once.
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
        self.started_at = time.monotonic()
        self.started_wall = datetime.now(UTC).isoformat(timespec="seconds")
        self._note(f"started pid {self.proc.pid}: {' '.join(self.spec.argv)}")
        self._pump = asyncio.create_task(self._copy_output(self.proc), name=f"{self.name}-output")

    async def wait(self) -> int:
        """Wait for the current process to exit (and its output to be written); its exit code."""
        if not (self.proc is not None):
            raise RuntimeError("invariant broken: self.proc is not None")
        code = await self.proc.wait()
        if self._pump is not None:
            # A grandchild that inherited the pipe can keep it open after the service is gone.
            done, _ = await asyncio.wait({self._pump}, timeout=2.0)
            if not done:
                self._pump.cancel()
        self.last_exit = code
        return code

    async def supervise(self, stopping: asyncio.Event, on_restart: Callable[[Service], None]) -> None:
        """Restart the process whenever it exits, until `stopping` is set."""
        while True:
            code = await self.wait()
            if stopping.is_set():
                return
            ran = time.monotonic() - self.started_at
            if ran >= self.policy.reset_after:
                self.crashes_in_a_row = 0
            self.crashes_in_a_row += 1
            delay = self.policy.delay(self.crashes_in_a_row)
            how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
            message = (
                f"{self.name} {how} after {ran:.1f}s; restarting in {delay:g}s (see {self.spec.log_file})"
            )
            log.warning("%s", message)
            self._note(message)
            while True:
                await _sleep_unless(stopping, delay)
                if stopping.is_set():
                    return
                try:
                    await self.spawn()
                    break
                except OSError as exc:
                    # Cannot even exec (e.g. the venv is gone): keep trying on the same backoff.
                    self.crashes_in_a_row += 1
                    delay = self.policy.delay(self.crashes_in_a_row)
                    log.error("cannot start %s: %s; trying again in %gs", self.name, exc, delay)  # noqa: TRY400 - the message says what happened; no traceback in the log
            self.restarts += 1
            on_restart(self)
            if stopping.is_set() and self.proc is not None:
                # stop() began while this restart was under way and did not see this process.
                with contextlib.suppress(ProcessLookupError):
                    self.proc.terminate()

    async def terminate(self, grace: float) -> None:
        """SIGTERM; SIGKILL (the whole process group) if it has not exited after `grace` s."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            log.warning("%s (pid %s) did not stop within %gs; killing it", self.name, proc.pid, grace)
            self.kill()
            await proc.wait()

    def kill(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        # The group (same id as the pid: it leads its own session) also holds what it started.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def state(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "restarts": self.restarts,
            "started_at": self.started_wall,
            "last_exit": self.last_exit,
            "log": str(self.spec.log_file),
            "argv": list(self.spec.argv),
            **self.spec.info,
        }

    def _note(self, message: str) -> None:
        """A supervisor line in the service's own log, so the log tells the whole story."""
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        with contextlib.suppress(OSError), self.spec.log_file.open("a", encoding="utf-8") as f:
            f.write(f"--- wf {stamp}: {message}\n")

    async def _copy_output(self, proc: asyncio.subprocess.Process) -> None:
        """Drain the child's output into its log (and the terminal) until it closes the pipe.

        The draining never stops early: a child whose pipe fills up blocks on its next log line. So a
        failing log file (disk full) or terminal (closed, `wf start | head`) only loses that copy.
        """
        if not (proc.stdout is not None):
            raise RuntimeError("invariant broken: proc.stdout is not None")
        pending = b""
        out = self._open_log()
        try:
            while chunk := await proc.stdout.read(65536):
                if out is not None:
                    try:
                        out.write(chunk)
                        out.flush()
                    except OSError as exc:
                        log.error(  # noqa: TRY400 - the message says what happened; no traceback in the log
                            "cannot write %s (%s); output of %s is lost", self.spec.log_file, exc, self.name
                        )
                        out = None
                if self._echo is None:
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if len(pending) > 65536:  # no newline in sight: show what there is
                    lines.append(pending)
                    pending = b""
                self._echo_lines(lines)
            if pending:
                self._echo_lines([pending])
        finally:
            if out is not None:
                with contextlib.suppress(OSError):
                    out.close()

    def _open_log(self) -> BinaryIO | None:
        try:
            return self.spec.log_file.open("ab")
        except OSError as exc:
            log.error("cannot open %s (%s); output of %s is lost", self.spec.log_file, exc, self.name)  # noqa: TRY400 - the message says what happened; no traceback in the log
            return None

    def _echo_lines(self, lines: list[bytes]) -> None:
        if self._echo is None:
            return
        try:
            for line in lines:
                self._echo(self.name, line.decode("utf-8", errors="replace"))
        except OSError:
            self._echo = None  # the terminal is gone; the log file still gets everything


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        policy: RestartPolicy | None = None,
        *,
        echo: Echo | None = None,
        on_change: Callable[[], None] | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"service names must be unique: {names}")
        self.policy = policy or RestartPolicy()
        self.services = [Service(s, self.policy, echo) for s in specs]
        self.stop_timeout = stop_timeout
        self._on_change = on_change or (lambda: None)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    async def start(self) -> None:
        """Spawn every service (in the given order), then watch them."""
        for svc in self.services:
            await svc.spawn()
        for svc in self.services:
            task = asyncio.create_task(svc.supervise(self._stopping, lambda _: self._on_change()))
            self._tasks.append(task)
        self._on_change()

    async def stop(self, grace: float | None = None) -> None:
        """Stop every service at once (SIGTERM, then SIGKILL after `grace` s) and stop restarting."""
        self._stopping.set()
        wait = self.stop_timeout if grace is None else grace
        await asyncio.gather(*(s.terminate(wait) for s in self.services))
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=wait + 5)
            if pending:  # a restart raced with stop(): its process gets no second chance
                self.kill_all()
                await asyncio.wait(pending)
        self._tasks.clear()

    def kill_all(self) -> None:
        """SIGKILL every service now (a second Ctrl-C)."""
        self._stopping.set()
        for svc in self.services:
            svc.kill()

    def state(self) -> dict[str, dict[str, Any]]:
        return {s.name: s.state() for s in self.services}


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `event` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"
