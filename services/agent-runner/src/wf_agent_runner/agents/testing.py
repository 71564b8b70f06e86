"""TESTING: after deploy, runs the project's end-to-end command (e.g. a Playwright test) in the job's
sandbox, and the project's test command; the verdict comes from the runs.

On an E2E failure the screenshots, traces and logs the command left in the artifacts directory
(`agents.projects.<slug>.e2e_artifacts_dir`, Playwright's `test-results` by default) and its output
are attached to the result, and so to the bug (`GET /api/attachments/{id}`). With no E2E command the
result says "skipped: no E2E command configured" (summary and `Result.skipped`), never a plain pass.
"""

from __future__ import annotations

import asyncio

from wf_common.jobs import MAX_ATTACHMENTS_BYTES, Result, ResultFile, TestRun
from wf_common.states import Verdict

from wf_agent_runner import artifacts
from wf_agent_runner.agents.base import Agent
from wf_agent_runner.agents.verdicts import agent_verdict, combined_summary, run_project_tests
from wf_agent_runner.sandbox import SandboxError
from wf_agent_runner.testrun import TestReport, run_tests
from wf_agent_runner.tools import READ_ONLY_TOOLS
from wf_agent_runner.workspace import Workspace

NO_E2E = "skipped: no E2E command configured"
NO_E2E_HELP = (
    f"{NO_E2E} (set agents.projects.<slug>.e2e_command in config.yaml, e.g. a Playwright test); "
    "only the project's test command ran."
)
OUTPUT_NAME = "e2e-output.txt"


class TestingAgent(Agent):
    __test__ = False  # not a pytest test class, despite the name
    role = "testing"
    tools = (*READ_ONLY_TOOLS[:-1], "run", "finish")
    instructions = """\
You check the deployed change end to end. You can read the workspace (list_files, read_file, search)
and run commands in a sandbox (run), but not change it. Review whether the tests cover realistic
scenarios for the task; after you finish, the project's end-to-end command and its test command are
run and their results decide the verdict.
Call finish(status="pass"|"fail", summary=...) with what you checked and any gaps you found."""

    async def run(self) -> Result:
        ws = Workspace(self.ctx.workspace)
        loop = await self.tool_loop(self.toolbox(ws), await self.prompt())
        agent_ok, agent_text = agent_verdict(loop)
        report = await run_project_tests(self, junit=True)
        summary = combined_summary(report, agent_ok, agent_text)
        command = self.job.project.e2e_command
        if not command:
            await self.out.emit("log", NO_E2E_HELP)
            passed = report.run.passed and agent_ok
            return self.result(
                Verdict.PASS if passed else Verdict.FAIL,
                f"{NO_E2E_HELP}\n\n{summary}",
                test_run=report.run,
                skipped=NO_E2E,
            )
        e2e, files, left_out = await self.end_to_end(command)
        lines = [f"E2E `{command}`: {e2e.description}."]
        if files:
            lines.append("Attached: " + ", ".join(f.filename for f in files))
        if left_out:
            lines.append("Not attached: " + "; ".join(left_out))
        passed = e2e.run.passed and report.run.passed and agent_ok
        # The E2E run comes first in the summary (the bug's title) and is the test run a bug reproduces.
        run = e2e.run if not e2e.run.passed or report.run.passed else report.run
        return self.result(
            Verdict.PASS if passed else Verdict.FAIL,
            "\n".join(lines) + f"\n\n{summary}",
            test_run=run,
            files=files,
        )

    async def end_to_end(self, command: str) -> tuple[TestReport, list[ResultFile], list[str]]:
        sandbox = self.ctx.sandbox
        if sandbox is None:
            raise SandboxError("no sandbox for the E2E command; the runner must open one for the job")
        await self.out.emit("log", f"running the E2E command in the {sandbox.backend} sandbox: {command}")
        report = await run_tests(
            sandbox, command, limit_seconds=self.ctx.e2e_timeout, on_line=self.out.command_output
        )
        await self.out.flush()
        await self.out.emit("log", f"E2E: {report.description}", exit_code=report.run.exit_code)
        if report.run.passed:
            return report, [], []
        text = _output(report.run).encode("utf-8")
        output = artifacts.as_file(OUTPUT_NAME, text, "text/plain; charset=utf-8")
        budget = MAX_ATTACHMENTS_BYTES - output.size
        found = await asyncio.to_thread(
            artifacts.collect, self.ctx.workspace, self.ctx.e2e_artifacts_dir, budget
        )
        return report, [output, *found.files], found.left_out


def _output(run: TestRun) -> str:
    return f"$ {run.command}\nexit code: {run.exit_code}\n\n{run.output_tail}"
