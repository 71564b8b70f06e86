"""DEV: implements the task with the file tools, runs the tests itself (run, in the sandbox), then
commits what it changed. If it finishes without having run the tests, the runner runs the project's
test command and reports the outcome in the result (the test run travels to QA)."""

from __future__ import annotations

from wf_common.jobs import Result
from wf_common.states import Verdict

from wf_agent_runner.agents.base import Agent, after_first_line, commit_subject
from wf_agent_runner.agents.verdicts import run_project_tests
from wf_agent_runner.tools import RUN_TOOLS
from wf_agent_runner.workspace import Workspace


class DevAgent(Agent):
    role = "dev"
    tools = RUN_TOOLS
    instructions = """\
You work in the project's workspace through tools: list_files, read_file, search, write_file, edit_file,
and run (a shell command in a sandbox, e.g. the tests: no network, nothing outside the workspace).
Read the relevant code first, then make the change the task asks for, with tests where it fits.
Fix every open bug listed below. Your changes are committed for you when you finish.
Before you finish with "pass", run the project's tests with run (the test command is in the project
section below) and fix what fails.
When done call finish(status="pass", summary=...): the summary's first line is a short imperative
commit subject (e.g. "Add price parser"), then what you changed and why.
If the task is unclear or cannot be done, call finish(status="fail", summary=<your question for a human>)."""

    async def run(self) -> Result:
        if done := await self.earlier_delivery():
            return done
        ws = Workspace(self.ctx.workspace)
        loop = await self.tool_loop(self.toolbox(ws), await self.prompt())
        if loop.finish is None:
            return self.result(Verdict.FAIL, loop.reason, escalate=True, files_changed=list(ws.changed))
        if loop.finish.status == "fail":
            # "If unsure, ask for clarification rather than guessing": a human answers.
            return self.result(
                Verdict.FAIL, loop.finish.summary, escalate=True, files_changed=list(ws.changed)
            )
        summary = loop.finish.summary
        commits, files = await self.commit(
            ws,
            subject=commit_subject(self.job.task.key, summary, self.job.task.title),
            body=after_first_line(summary),
        )
        if ran_tests(self.commands_run, self.job.project.test_command):
            return self.result(Verdict.PASS, summary, commits=commits, files_changed=files)
        await self.out.emit("log", "DEV finished without running the tests; running the test command")
        report = await run_project_tests(self)
        note = (
            "DEV finished without running the tests; the runner ran "
            f"`{report.run.command}`: {report.description}."
        )
        return self.result(
            Verdict.PASS, f"{summary}\n\n{note}", commits=commits, files_changed=files, test_run=report.run
        )


def ran_tests(commands: list[str], test_command: str) -> bool:
    """Whether one of the agent's commands ran the tests (the test command, or a test runner)."""
    words = ("pytest", "unittest", "npm test", "npm run test", "go test", "cargo test", "make test", "tox")
    return any((test_command and test_command.strip() in c) or any(w in c for w in words) for c in commands)
