"""QA: may add tests with the file tools; the verdict comes from running the project's test command."""

from __future__ import annotations

import fnmatch
import posixpath

from wf_common.jobs import Result
from wf_common.states import Verdict

from wf_agent_runner import taskdiff
from wf_agent_runner.agents.base import Agent, phrase
from wf_agent_runner.agents.tampering import tampering
from wf_agent_runner.agents.verdicts import agent_verdict, combined_summary, run_project_tests
from wf_agent_runner.testrun import TestReport
from wf_agent_runner.tools import RUN_TOOLS
from wf_agent_runner.workspace import Workspace

TEST_FILE_PATTERNS = ("test_*", "*_test.*", "*_tests.*", "conftest.py", "*.test.*", "*.spec.*")
TEST_DIRS = {"test", "tests", "__tests__", "spec", "e2e"}


def only_test_files(rel: str) -> str | None:
    """QA writes tests, not fixes: a broken implementation is reported as a failing test for DEV."""
    parts = rel.split("/")
    if TEST_DIRS.intersection(parts[:-1]) or any(
        fnmatch.fnmatch(posixpath.basename(rel), p) for p in TEST_FILE_PATTERNS
    ):
        return None
    return (
        f"QA may only write test files (under tests/, or named test_*.py, *_test.*, conftest.py, *.spec.*), "
        f"not {rel!r}; if the implementation is wrong, write a test that shows it and finish with 'fail'"
    )


class QAAgent(Agent):
    role = "qa"
    tools = RUN_TOOLS
    instructions = """\
You verify the task's acceptance criteria. Read the code and the existing tests with list_files,
read_file and search; run the tests with run (a sandbox); add or extend tests (only test files) with
write_file/edit_file so that every acceptance criterion is tested, including edge cases and error
conditions. Do not change the implementation.
After you finish, the project's test command is run and its result decides the verdict.
Call finish(status="pass", summary=...) when the tests cover the criteria, or finish(status="fail",
summary=<what is wrong, with reproduction steps>) if the implementation does not meet them."""

    async def run(self) -> Result:
        ws = Workspace(self.ctx.workspace, write_filter=only_test_files)
        loop = await self.tool_loop(self.toolbox(ws), await self.prompt())
        agent_ok, agent_text = agent_verdict(loop)
        report = await run_project_tests(self, junit=True)
        # The tests it wrote are committed whatever the verdict: failing ones are DEV's reproduction.
        commits, files = await self.commit(
            ws, subject=f"{self.job.task.key}: Add tests for {phrase(self.job.task.title)}", body=agent_text
        )
        return await qa_result(self, report, agent_ok, agent_text, commits, files)


async def qa_result(
    agent: Agent,
    report: TestReport,
    agent_ok: bool,
    agent_text: str,
    commits: list[str],
    files: list[str],
) -> Result:
    """The QA verdict: the test run decides; a change that weakens existing tests (its commits'
    patch) fails the stage and is listed in the bug, whatever the run says."""
    flags = tampering(await taskdiff.commits_patch(agent.ctx.workspace, commits))
    summary = combined_summary(report, agent_ok, agent_text)
    if flags:
        lines = "\n".join(f"- {f.path}{f':{f.line}' if f.line else ''}: {f.message}" for f in flags)
        summary = f"QA changed existing tests; flagged for review:\n{lines}\n\n{summary}"
        for f in flags:
            await agent.out.emit("error", f"flagged: {f.path}: {f.message}")
    passed = report.run.passed and agent_ok and not flags
    return agent.result(
        Verdict.PASS if passed else Verdict.FAIL,
        summary,
        test_run=report.run,
        findings=flags,
        commits=commits,
        files_changed=files,
    )
