"""The sandbox contract every backend implements, and the output capture they share.

A `Sandbox` belongs to one job. `run(command, timeout, on_line)` runs `/bin/sh -c command` with the
job's worktree as the working directory (`/workspace` inside docker and bubblewrap), streams every
output line to `on_line` as it is produced, and returns a `RunOutcome`: exit code, stdout and stderr
(cut to the configured size, with a note of how much was cut) and which limit, if any, stopped it.
`freeze()`/`thaw()` stop and continue everything running in it (pause); `close()` ends everything it
started. A sandbox never raises for what the command does; `SandboxError` means the sandbox itself
cannot work (no engine, image missing) and the job cannot run.
"""

from __future__ import annotations

import codecs
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

LineCallback = Callable[[str], Awaitable[None]]

# What a limit hit is called in RunOutcome.limit_hit (and shown to the model and in events).
TIMEOUT = "timeout"
MEMORY = "memory"
PIDS = "pids"

SANDBOX_HOME = "/tmp/home"  # noqa: S108 - inside the sandbox: its own private tmpfs
WORKDIR = "/workspace"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxError(Exception):
    """The sandbox cannot be made or used (no engine, missing image); the message says how to fix it."""


def sandbox_env(home: str = SANDBOX_HOME, path: str = PATH) -> dict[str, str]:
    """The whole environment of a sandboxed command: nothing of the runner's (tokens, URLs) leaks in."""
    return {
        "HOME": home,
        "PATH": path,
        "LANG": "C.UTF-8",
        "CI": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TMPDIR": "/tmp",  # noqa: S108 - the sandbox's own /tmp
    }


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int | None  # None: it did not end by itself (killed for a limit)
    stdout: str
    stderr: str
    truncated: str = ""  # e.g. "stdout: 120000 chars cut"; empty when nothing was cut
    limit_hit: str | None = None  # "timeout", "memory", "pids", or None
    duration_ms: float = 0.0
    detail: str = ""  # one line on the limit, e.g. "killed after 5s"

    @classmethod
    def captured(
        cls,
        exit_code: int | None,
        out: StreamCapture,
        err: StreamCapture,
        *,
        started: float,
        limit_hit: str | None,
        detail: str,
    ) -> RunOutcome:
        """The outcome of a command whose output `out`/`err` captured, started at `started`
        (time.monotonic())."""
        return cls(
            exit_code,
            out.text(),
            err.text(),
            truncated=truncation_note(out, err),
            limit_hit=limit_hit,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            detail=detail,
        )

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit_hit is None

    def report(self) -> str:
        """The tool result the model sees."""
        head = [f"exit code: {self.exit_code if self.exit_code is not None else 'none (killed)'}"]
        if self.limit_hit:
            head.append(f"limit hit: {self.limit_hit}" + (f" ({self.detail})" if self.detail else ""))
        elif self.detail:
            head.append(f"note: {self.detail}")
        parts = ["\n".join(head)]
        if self.stdout:
            parts.append(f"--- stdout ---\n{self.stdout.rstrip()}")
        if self.stderr:
            parts.append(f"--- stderr ---\n{self.stderr.rstrip()}")
        if not self.stdout and not self.stderr:
            parts.append("(no output)")
        if self.truncated:
            parts.append(f"[output truncated: {self.truncated}]")
        return "\n".join(parts)


class StreamCapture:
    """One stream's text, kept within `limit` chars (its head and tail), decoded and split into lines
    that go to `on_line` as they complete. Streaming stops after `stream_limit` chars (said once)."""

    def __init__(self, name: str, limit: int, on_line: LineCallback | None, stream_limit: int) -> None:
        self.name = name
        self.limit = limit
        self.on_line = on_line
        self.stream_limit = stream_limit
        self.streamed = 0
        self.head: list[str] = []
        self.head_size = 0
        self.tail = ""
        self.total = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    async def feed(self, chunk: bytes, *, final: bool = False) -> None:
        text = self._decoder.decode(chunk, final=final)
        self._keep(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        if final and self._pending:
            lines.append(self._pending)
            self._pending = ""
        for line in lines:
            await self._line(line.rstrip("\r"))

    async def finish(self) -> None:
        await self.feed(b"", final=True)

    def _keep(self, text: str) -> None:
        self.total += len(text)
        half = self.limit // 2
        if self.head_size < half:
            take = text[: half - self.head_size]
            self.head.append(take)
            self.head_size += len(take)
            text = text[len(take) :]
        if text:
            self.tail = (self.tail + text)[-(self.limit - half) :]

    async def _line(self, line: str) -> None:
        if self.on_line is None:
            return
        if self.streamed >= self.stream_limit:
            return
        self.streamed += len(line) + 1
        if self.streamed >= self.stream_limit:
            note = f"[{self.name}: more than {self.stream_limit} chars; the rest is not streamed]"
            await self.on_line(note)
            return
        await self.on_line(line)

    @property
    def cut(self) -> int:
        return max(0, self.total - self.head_size - len(self.tail))

    def text(self) -> str:
        head = "".join(self.head)
        if not self.cut:
            return head + self.tail
        return f"{head}\n[... {self.cut} chars cut ...]\n{self.tail}"


def truncation_note(*captures: StreamCapture) -> str:
    return ", ".join(f"{c.name}: {c.cut} of {c.total} chars cut" for c in captures if c.cut)


class Sandbox(ABC):
    """One job's sandbox. Use `open_sandbox` to make one; always `close()` it."""

    backend: str = ""
    warning: str | None = None  # said on every job and on the task (backend `none`)

    def __init__(self, output_limit: int) -> None:
        self.output_limit = output_limit

    def captures(self, on_line: LineCallback | None) -> tuple[StreamCapture, StreamCapture]:
        stream_limit = self.output_limit * 5
        return (
            StreamCapture("stdout", self.output_limit, on_line, stream_limit),
            StreamCapture("stderr", self.output_limit, on_line, stream_limit),
        )

    @abstractmethod
    async def run(
        self,
        command: str,
        timeout: float,  # noqa: ASYNC109 - the contract: the limit kills the command
        on_line: LineCallback | None = None,
    ) -> RunOutcome:
        """Run `/bin/sh -c command` in the workspace; never raises for what the command does."""

    @abstractmethod
    async def freeze(self) -> None:
        """Stop everything running in the sandbox where it is (pause)."""

    @abstractmethod
    async def thaw(self) -> None:
        """Continue what freeze() stopped."""

    @abstractmethod
    async def close(self) -> None:
        """End everything the sandbox started and release it; safe to call twice."""

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
