"""Run the project's test command for a verdict: the QA and TESTING results come from this, never from
what the model says about the tests.

The command runs in the job's sandbox (`/bin/sh -c`, in the workspace), like every agent command:
docker or bubblewrap confine it; even backend `none` gives it a fresh temporary HOME, a minimal
environment (the runner's NATS URL, API keys and other settings are not passed on) and its own
process group, killed when it ends. Output is streamed line by line as it comes.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wf_common.jobs import TestRun

from wf_agent_runner.sandbox.base import TIMEOUT, Sandbox

TAIL_CHARS = 4000
PYTEST_NO_TESTS = 5
SHELL_NOT_EXECUTABLE = 126
SHELL_NOT_FOUND = 127
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
        m = _SUMMARY_LINE.match(stripped) or _VERBOSE_LINE.match(stripped)
        if m and m.group(1) not in self.failed:
            self.failed.append(m.group(1))
        if m := _FINAL_LINE.match(stripped):
            self.final_line = m.group(1)
        if self.on_line is not None:
            await self.on_line(text)


async def run_tests(
    sandbox: Sandbox, command: str, *, limit_seconds: float, on_line: LineCallback | None = None
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

    if not command.strip():
        return report(None, False, "the project has an empty test command; set it on the project")
    try:
        argv = shlex.split(command)
    except ValueError as err:
        return report(None, False, f"the test command {command!r} cannot be parsed: {err}")
    outcome = await sandbox.run(command, limit_seconds, collector.line)
    if outcome.limit_hit == TIMEOUT:
        await collector.line(f"[killed: the test command ran longer than {limit_seconds:g}s]")
        return report(None, False, f"the test command timed out after {limit_seconds:g}s", timed_out=True)
    if outcome.limit_hit:
        await collector.line(f"[stopped: {outcome.limit_hit} limit hit: {outcome.detail}]")
        return report(outcome.exit_code, False, f"the test command hit the sandbox's {outcome.limit_hit} "
                      f"limit ({outcome.detail})")  # fmt: skip
    code = outcome.exit_code if outcome.exit_code is not None else -1
    if code in (SHELL_NOT_FOUND, SHELL_NOT_EXECUTABLE):
        return report(
            code, False, f"the test command could not start: {argv[0]!r} not found or not executable"
        )
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
