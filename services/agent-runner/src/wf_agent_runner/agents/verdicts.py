"""Verdicts that come from actually running the project's tests (QA, TESTING)."""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import replace

from wf_common.jobs import TestFailure

from wf_agent_runner import confined
from wf_agent_runner.agents.base import Agent, LoopOutcome
from wf_agent_runner.junit import MAX_XML_BYTES, JUnitError, parse_junit
from wf_agent_runner.sandbox import SandboxError
from wf_agent_runner.testrun import TestReport, run_tests

JUNIT_DIR = ".workflow/agent_logs/junit"  # ignored (.workflow/.gitignore): the worktree stays clean


def junit_path(agent: Agent) -> str:
    return f"{JUNIT_DIR}/{agent.job.stage}-{agent.job.job_id}-{agent.job.attempt}.xml"


def with_junit(command: str, path: str) -> str | None:
    """The pytest command writing JUnit XML to `path`, or None if the command is not pytest."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if not any("pytest" in a for a in argv):
        return None
    return f"{command} --junitxml={shlex.quote(path)} -o junit_family=xunit2"


async def run_project_tests(agent: Agent, *, junit: bool = False) -> TestReport:
    """The project's test command in the job's sandbox; with `junit` (a pytest command), the JUnit XML
    it writes gives each failing test with its output (`TestRun.failures`)."""
    job = agent.job
    command = job.project.test_command or "python -m pytest"
    xml_path = junit_path(agent)
    junit_command = with_junit(command, xml_path) if junit else None
    sandbox = agent.ctx.sandbox
    if sandbox is None:  # the executor always gives one; nothing model-written runs unconfined by accident
        raise SandboxError("no sandbox for the test command; the runner must open one for the job")
    await agent.out.emit("log", f"running the test command in the {sandbox.backend} sandbox: {command}")
    if junit_command is not None:
        await asyncio.to_thread(confined.write_under, agent.ctx.workspace, xml_path, b"")
    report = await run_tests(
        sandbox,
        junit_command or command,
        limit_seconds=agent.ctx.test_timeout,
        on_line=agent.out.command_output,
    )
    await agent.out.flush()
    await agent.out.emit("log", report.description, exit_code=report.run.exit_code)
    report = replace(report, run=report.run.model_copy(update={"command": command}))
    if junit_command is not None:
        report = await _with_failures(agent, report, xml_path)
    return report


async def _with_failures(agent: Agent, report: TestReport, xml_path: str) -> TestReport:
    def read() -> bytes:
        with confined.rooted(agent.ctx.workspace) as fd:
            return confined.read_bytes(fd, xml_path, MAX_XML_BYTES + 1)[0]

    try:
        data = await asyncio.to_thread(read)
        failures = parse_junit(data).failures if data.strip() else []
    except (OSError, confined.ConfinementError, JUnitError) as err:
        await agent.out.emit("log", f"no usable JUnit XML from the test run ({err}); using its output")
        return report
    if not failures:
        return report
    return replace(report, run=report.run.model_copy(update={"failures": failures}))


def agent_verdict(loop: LoopOutcome) -> tuple[bool, str]:
    """(agent passed, its words) from the agent's finish, or why it did not finish."""
    if loop.finish is None:
        return False, loop.reason
    return loop.finish.status == "pass", loop.finish.summary


def combined_summary(report: TestReport, agent_ok: bool, agent_text: str) -> str:
    run = report.run
    parts = [f"Test run `{run.command}`: {report.description}."]
    if run.failures:
        parts.append("Failing tests:\n" + "\n".join(_failure_text(f) for f in run.failures))
    elif run.failed_tests:
        parts.append("Failing tests:\n" + "\n".join(f"- {t}" for t in run.failed_tests))
    parts.append(f"Agent ({'pass' if agent_ok else 'fail'}): {agent_text}")
    return "\n\n".join(parts)


def _failure_text(f: TestFailure) -> str:
    output = "\n".join(f"    {ln}" for ln in f.output.splitlines()[-40:])
    return f"- {f.name}: {f.message}" + (f"\n{output}" if output else "")
