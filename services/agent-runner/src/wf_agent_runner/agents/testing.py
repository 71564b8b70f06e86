"""TESTING: reviews with read-only tools; the verdict comes from running the project's test command.

E2E browser tests (Playwright) arrive in a later version; the summary says so rather than pretend.
"""

from __future__ import annotations

from wf_common.jobs import Result
from wf_common.states import Verdict

from wf_agent_runner.agents.base import Agent
from wf_agent_runner.agents.verdicts import agent_verdict, combined_summary, run_project_tests
from wf_agent_runner.tools import READ_ONLY_TOOLS
from wf_agent_runner.workspace import Workspace

NOT_YET = (
    "Not run in this version: E2E/Playwright browser tests (planned); "
    "this verdict comes from the project's test command only."
)


class TestingAgent(Agent):
    __test__ = False  # not a pytest test class, despite the name
    role = "testing"
    tools = (*READ_ONLY_TOOLS[:-1], "run", "finish")
    instructions = """\
You check the deployed change end to end. You can read the workspace (list_files, read_file, search)
and run commands in a sandbox (run), but not change it. Review whether the tests cover realistic
scenarios for the task; after you finish, the project's full test command is run and its result
decides the verdict.
Call finish(status="pass"|"fail", summary=...) with what you checked and any gaps you found."""

    async def run(self) -> Result:
        ws = Workspace(self.ctx.workspace)
        loop = await self.tool_loop(self.toolbox(ws), await self.prompt())
        agent_ok, agent_text = agent_verdict(loop)
        report = await run_project_tests(self)
        passed = report.run.passed and agent_ok
        return self.result(
            Verdict.PASS if passed else Verdict.FAIL,
            f"{combined_summary(report, agent_ok, agent_text)}\n\n{NOT_YET}",
            test_run=report.run,
        )
