"""Verdicts that come from actually running the project's tests (QA, TESTING)."""

from __future__ import annotations

from wf_agent_runner.agents.base import Agent, LoopOutcome
from wf_agent_runner.sandbox import SandboxError
from wf_agent_runner.testrun import TestReport, run_tests


async def run_project_tests(agent: Agent) -> TestReport:
    job = agent.job
    command = job.project.test_command or "python -m pytest"
    sandbox = agent.ctx.sandbox
    if sandbox is None:  # the executor always gives one; nothing model-written runs unconfined by accident
        raise SandboxError("no sandbox for the test command; the runner must open one for the job")
    await agent.out.emit("log", f"running the test command in the {sandbox.backend} sandbox: {command}")
    report = await run_tests(
        sandbox, command, limit_seconds=agent.ctx.test_timeout, on_line=agent.out.command_output
    )
    await agent.out.flush()
    await agent.out.emit("log", report.description, exit_code=report.run.exit_code)
    return report


def agent_verdict(loop: LoopOutcome) -> tuple[bool, str]:
    """(agent passed, its words) from the agent's finish, or why it did not finish."""
    if loop.finish is None:
        return False, loop.reason
    return loop.finish.status == "pass", loop.finish.summary


def combined_summary(report: TestReport, agent_ok: bool, agent_text: str) -> str:
    run = report.run
    parts = [f"Test run `{run.command}`: {report.description}."]
    if run.failed_tests:
        parts.append("Failing tests:\n" + "\n".join(f"- {t}" for t in run.failed_tests))
    parts.append(f"Agent ({'pass' if agent_ok else 'fail'}): {agent_text}")
    return "\n\n".join(parts)
