"""DEV: implements the task with the file tools, runs the tests itself (run, in the sandbox), then
commits what it changed: what its file tools wrote and what else changed in the worktree since the job
started (files made or edited with run; caches, .workflow/ and files already dirty before are left
out, see jobchanges.py). If it calls finish without having run the tests, the runner runs the
project's test command then: failing tests go back to the agent once, as finish's error with the
failures, so that it fixes them; the outcome of the last run travels to QA in the result.

A "pass" that changed no file is not a delivery: the task asked for a change. It fails with
NO_CHANGE (the task goes to needs-human with the agent's own words), except on rework, when this
task's earlier DEV commits are on the branch and the project's tests pass: then the agent judged the
work already done (a bug that was not one, feedback already met) and the stage passes, saying so."""

from __future__ import annotations

from wf_common.jobs import Result
from wf_common.states import Verdict

from wf_agent_runner import gitrepo
from wf_agent_runner.agents.base import MUST_WRITE, Agent, Objection, after_first_line, commit_subject
from wf_agent_runner.agents.verdicts import run_project_tests
from wf_agent_runner.testrun import TestReport
from wf_agent_runner.tools import RUN_TOOLS, Finish
from wf_agent_runner.workspace import Workspace

NO_CHANGE = "DEV finished without changing any file"
NO_TESTS_COLLECTED = 5  # pytest's exit code
FAILURE_TAIL_CHARS = 1500  # of the test output, fed back with a refused finish


class DevAgent(Agent):
    role = "dev"
    tools = RUN_TOOLS
    ws: Workspace  # set by run()
    # Set by run(): each reason refuses a finish once (no change; failing tests, with that run and
    # the (writes, commands) count it saw), and the test run that let the last finish stand.
    refused_no_change: bool
    refused_tests: tuple[tuple[int, int], TestReport] | None
    finish_tests: TestReport | None
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
        ws = self.ws = Workspace(self.ctx.workspace)
        await self.take_baseline()  # what `run` changes is committed too; what was dirty before is not
        self.refused_no_change, self.refused_tests, self.finish_tests = False, None, None
        loop = await self.tool_loop(self.toolbox(ws), await self.prompt())
        if loop.finish is None:
            return self.result(
                Verdict.FAIL, loop.reason, escalate=True, files_changed=await self.changed_paths(ws)
            )
        if loop.finish.status == "fail":
            # "If unsure, ask for clarification rather than guessing": a human answers.
            return self.result(
                Verdict.FAIL, loop.finish.summary, escalate=True, files_changed=await self.changed_paths(ws)
            )
        summary = loop.finish.summary
        commits, files = await self.commit(
            ws,
            subject=commit_subject(self.job.task.key, summary, self.job.task.title),
            body=after_first_line(summary),
        )
        if not files:
            return await self.nothing_changed(summary)
        if ran_tests(self.commands_run, self.job.project.test_command):
            return self.result(Verdict.PASS, summary, commits=commits, files_changed=files)
        report = self.finish_tests
        if report is None:
            await self.out.emit("log", "DEV finished without running the tests; running the test command")
            report = await run_project_tests(self)
        note = (
            "DEV finished without running the tests; the runner ran "
            f"`{report.run.command}`: {report.description}."
        )
        return self.result(
            Verdict.PASS, f"{summary}\n\n{note}", commits=commits, files_changed=files, test_run=report.run
        )

    async def refuse_finish(self, finish: Finish) -> Objection | None:
        """A finish goes back to the agent, once per reason: a "pass" or a "fail" with no change (weak
        models say they wrote what they did not, or give up before writing anything, e.g. when the
        tests of a new project collect nothing; a rework over this task's earlier commits may
        legitimately change nothing), and a "pass" with failing tests when it did not run them itself
        (the runner runs them now)."""
        self.finish_tests = None
        if not await self.changed_paths(self.ws):  # whether with its file tools or with run
            if self.refused_no_change or (self.is_rework() and await self.earlier_commits()):
                return None
            self.refused_no_change = True
            if finish.status == "fail":
                text = (
                    "nothing is written yet, and the task asks for a change: try it first. Write the code "
                    "with write_file(path, content) (or edit_file for a small change to an existing file), "
                    "then call finish; if it really cannot be done, call finish(status='fail', "
                    "summary=<why>) again."
                )
            else:
                text = (
                    f"{NO_CHANGE}. The task asks for a change: write the code with write_file(path, "
                    "content) (or edit_file for a small change to an existing file), then call finish "
                    "again; or call finish(status='fail', summary=<what is unclear>)."
                )
            return Objection(text, narrow=MUST_WRITE)  # the next turn accepts only the tools that write
        if finish.status != "pass":
            return None
        if ran_tests(self.commands_run, self.job.project.test_command):
            return None
        stamp = (self.ws.writes, len(self.commands_run))
        if self.refused_tests is not None and self.refused_tests[0] == stamp:
            self.finish_tests = self.refused_tests[1]  # nothing changed since: the same failing run
            return None
        if self.refused_tests is not None:
            return None  # refused once already: this finish stands, the end runs the tests again
        await self.out.emit("log", "DEV called finish without running the tests; running the test command")
        report = await run_project_tests(self)
        if report.run.passed or report.run.exit_code == NO_TESTS_COLLECTED:
            # No tests yet is nothing to fix: QA writes them for the acceptance criteria.
            self.finish_tests = report
            return None
        self.refused_tests = (stamp, report)
        failing = ", ".join(report.run.failed_tests[:10])
        tail = report.run.output_tail[-FAILURE_TAIL_CHARS:].strip()
        return Objection(
            f"the project's tests fail (`{report.run.command}`: {report.description})"
            + (f"; failing: {failing}" if failing else "")
            + ". Fix the code (or the tests, if they are wrong), run the tests with run, then call finish "
            + f"again. The end of the test output:\n{tail}"
        )

    def is_rework(self) -> bool:
        job = self.job
        return job.attempt > 1 or bool(job.bugs) or bool(job.feedback)

    async def earlier_commits(self) -> list[str]:
        job = self.job
        return await gitrepo.stage_commits(self.ctx.workspace, job.project.slug, job.task.key, job.stage)

    async def nothing_changed(self, summary: str) -> Result:
        """A pass without a change: a no-op only on rework over this task's earlier commits, tests green."""
        earlier = await self.earlier_commits() if self.is_rework() else []
        if not earlier:
            why = (
                f"{NO_CHANGE}: the task asks for a change and the workspace has none. If it really "
                "needs no change, close it by hand; otherwise say what is missing and retry."
            )
            await self.out.emit("error", why)
            return self.result(Verdict.FAIL, f"{why}\n\nDEV said: {summary}")
        report = await run_project_tests(self)
        if not report.run.passed:
            why = (
                f"{NO_CHANGE} on rework, and the tests fail (`{report.run.command}`: "
                f"{report.description}): the open bugs still need a fix"
            )
            await self.out.emit("error", why)
            return self.result(Verdict.FAIL, f"{why}\n\nDEV said: {summary}", test_run=report.run)
        note = (
            f"{NO_CHANGE}: this task's earlier commit {earlier[0][:10]} stands and "
            f"`{report.run.command}` passes ({report.description})."
        )
        await self.out.emit("log", note)
        return self.result(
            Verdict.PASS, f"{summary}\n\n{note}", commits=[], files_changed=[], test_run=report.run
        )


def ran_tests(commands: list[str], test_command: str) -> bool:
    """Whether one of the agent's commands ran the tests (the test command, or a test runner)."""
    words = ("pytest", "unittest", "npm test", "npm run test", "go test", "cargo test", "make test", "tox")
    return any((test_command and test_command.strip() in c) or any(w in c for w in words) for c in commands)
