"""Run the project's test command for a verdict: the QA and TESTING results come from this, never from
what the model says about the tests.

Until sandboxed execution lands this is a plain subprocess in the workspace: no shell, a minimal
environment (the runner's NATS URL, API keys and other settings are not passed on), its own process
group so a timeout kills everything it started, and output streamed line by line as it comes.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import re
import shlex
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from wf_common.jobs import TestRun

TAIL_CHARS = 4000
PYTEST_NO_TESTS = 5
# Passed through from the runner's environment; everything else is dropped.
ENV_KEEP = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT")
# pytest's short summary ("FAILED tests/test_a.py::test_x - assert ...", "ERROR tests/test_b.py")
# and its verbose progress lines ("tests/test_a.py::test_x FAILED   [ 50%]").
_SUMMARY_LINE = re.compile(r"^(?:FAILED|ERROR) (\S+)")
_VERBOSE_LINE = re.compile(r"^(\S+::\S+) (?:FAILED|ERROR)\b")
# pytest's last line, "==== 2 failed, 3 passed in 0.41s ====" (without the = under -q).
_FINAL_LINE = re.compile(r"^=*\s*((?:\d+ [a-z]+|no tests ran)\b[^=]* in [\d.]+s\b[^=]*?)\s*=*$")

LineCallback = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class TestReport:
    __test__ = False  # not a pytest test class, despite the name
    run: TestRun
    description: str  # one line for the result summary, e.g. "2 failed, 3 passed in 0.4s"


def minimal_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
    env.update(CI="1", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    return env


class _Collector:
    """Keeps the output's tail and what the verdict needs from it, one line at a time."""

    def __init__(self, on_line: LineCallback | None) -> None:
        self.on_line = on_line
        self.tail = ""
        self.failed: list[str] = []
        self.final_line = ""

    async def line(self, text: str) -> None:
        self.tail = (self.tail + text + "\n")[-TAIL_CHARS:]
        stripped = text.strip()
        if m := _SUMMARY_LINE.match(stripped) or _VERBOSE_LINE.match(stripped):  # noqa: SIM102 - reads as two conditions
            if m.group(1) not in self.failed:
                self.failed.append(m.group(1))
        if m := _FINAL_LINE.match(stripped):
            self.final_line = m.group(1)
        if self.on_line is not None:
            await self.on_line(text)


async def _pump(stream: asyncio.StreamReader, collector: _Collector) -> None:
    # Chunks, not readline(): one very long line must not raise a LimitOverrunError.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while chunk := await stream.read(65536):
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        for ln in lines:
            await collector.line(ln.rstrip("\r"))
    pending += decoder.decode(b"", final=True)
    if pending:
        await collector.line(pending)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_tests(
    workspace: Path, command: str, *, limit_seconds: float, on_line: LineCallback | None = None
) -> TestReport:
    started = time.monotonic()
    collector = _Collector(on_line)

    def report(exit_code: int | None, passed: bool, description: str, timed_out: bool = False) -> TestReport:
        run = TestRun(
            command=command,
            exit_code=exit_code,
            passed=passed,
            failed_tests=collector.failed,
            output_tail=collector.tail,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            timed_out=timed_out,
        )
        return TestReport(run, description)

    try:
        argv = shlex.split(command)
    except ValueError as err:
        return report(None, False, f"the test command {command!r} cannot be parsed: {err}")
    if not argv:
        return report(None, False, "the project has an empty test command; set it on the project")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=workspace,
            env=minimal_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError) as err:
        await collector.line(f"cannot run {argv[0]!r}: {err.strerror or err}")
        return report(
            None, False, f"the test command could not start: {argv[0]!r} not found or not executable"
        )
    if not (proc.stdout is not None):
        raise RuntimeError("invariant broken: proc.stdout is not None")
    try:
        async with asyncio.timeout(limit_seconds):
            await _pump(proc.stdout, collector)
            code = await proc.wait()
    except TimeoutError:
        _kill_group(proc)
        await proc.wait()
        await collector.line(f"[killed: the test command ran longer than {limit_seconds:g}s]")
        return report(None, False, f"the test command timed out after {limit_seconds:g}s", timed_out=True)
    except BaseException:  # cancelled (runner stopping): leave no test processes behind
        _kill_group(proc)
        raise
    finally:
        _kill_group(proc)  # whatever the tests started in the background dies with them
    return _verdict(report, code, argv, collector)


def _verdict(
    report: Callable[[int | None, bool, str], TestReport], code: int, argv: list[str], c: _Collector
) -> TestReport:
    outcome = c.final_line or f"exit code {code}"
    if code == 0:
        return report(code, True, f"tests passed ({outcome})")
    if code == PYTEST_NO_TESTS and any("pytest" in a for a in argv):
        return report(code, False, "no tests were collected (pytest exit code 5); a test suite is required")
    failed = f": {', '.join(c.failed[:20])}" if c.failed else ""
    return report(code, False, f"tests failed ({outcome}){failed}")
