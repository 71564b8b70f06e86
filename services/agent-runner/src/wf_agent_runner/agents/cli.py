"""An external coding agent (Goose, Aider, Claude Code, Codex, or any command) as a stage's executor
(`pipeline.stages[].executor: {kind: cli, preset|command}`).

It gets the prompt the role's own agent would get, in a file under the worktree's
`.workflow/agent_logs/prompts/` (ignored by git) whose shell-quoted path replaces `{prompt_file}` in
the command template (the prompt text itself never enters the command line). The command runs in the
job's sandbox. Its exit code is reported but does not decide anything: the outcome is judged by the
workspace it leaves, the diff (committed by the runner) and the project's test run; for QA also the
tampering check on its commits.
"""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import ClassVar

from wf_common.config import ExecutorConfig
from wf_common.jobs import Result
from wf_common.states import Verdict

from wf_agent_runner import confined, gitrepo, taskdiff
from wf_agent_runner.agents.base import Agent, AgentContext, commit_subject
from wf_agent_runner.agents.qa import qa_result
from wf_agent_runner.agents.verdicts import run_project_tests
from wf_agent_runner.prompts import build_prompt, gather_context
from wf_agent_runner.sandbox import SandboxError

PROMPT_DIR = ".workflow/agent_logs/prompts"  # ignored: the worktree stays clean
# Roles whose work is a change: without a diff they did nothing.
CHANGE_ROLES = ("dev", "docs")


def render(template: str, prompt_file: str) -> str:
    return template.replace("{prompt_file}", shlex.quote(prompt_file))


class CliAgent(Agent):
    role = "cli"
    instructions: ClassVar[str] = ""

    def __init__(self, ctx: AgentContext, executor: ExecutorConfig, role_instructions: str) -> None:
        super().__init__(ctx)
        self.executor = executor
        self.role_instructions = role_instructions

    async def run(self) -> Result:
        if done := await self.earlier_delivery():
            return done
        sandbox = self.ctx.sandbox
        if sandbox is None:
            raise SandboxError("no sandbox for the coding agent; the runner must open one for the job")
        root = self.ctx.workspace
        job = self.job
        prompt = build_prompt(job, await gather_context(root, job), instructions=self.role_instructions)
        rel = f"{PROMPT_DIR}/{job.stage}-{job.job_id}-{job.attempt}.md"
        text = f"{prompt.system}\n\n{prompt.user}\n"
        await asyncio.to_thread(confined.write_under, root, rel, text.encode("utf-8"))
        self.out.record("prompt", system=prompt.system, user=prompt.user, prompt_file=rel)
        command = render(self.executor.template, rel)
        head_before = await _head(root)
        await self.take_baseline()  # a file dirty before it ran is not its work
        await self.out.emit("log", f"running the coding agent in the {sandbox.backend} sandbox: {command}")
        outcome = await sandbox.run(command, self.executor.timeout_seconds, self.out.command_output)
        await self.out.flush()
        exit_text = (
            f"the coding agent exited with {outcome.exit_code}"
            if outcome.limit_hit is None
            else f"the coding agent was stopped: {outcome.limit_hit} limit ({outcome.detail})"
        )
        await self.out.emit("log", f"{exit_text} (its exit code does not decide the verdict)")
        # What it changed: files it left uncommitted (committed here) and commits it made itself.
        own = await _commits_since(root, head_before)
        changed = await self.changed_paths(None, report=True)  # caches, .workflow/ etc. left out
        title = f"{job.task.key}: {job.stage} by {self.executor.preset or 'coding agent'}"
        sha = await gitrepo.commit_job(
            root, changed, subject=commit_subject(job.task.key, job.task.title, title),
            body=f"Made by `{command}` ({exit_text}).", key=job.idempotency_key,
            author=gitrepo.Author.agent(job.role),
        )  # fmt: skip
        commits = [*own, *([sha] if sha else [])]
        files = await taskdiff.commit_paths(root, commits)
        report = await run_project_tests(self, junit=job.role in ("qa", "testing"))
        lines = [
            f"{exit_text}; judged by the workspace instead.",
            f"Changed: {', '.join(files) if files else 'nothing'}.",
        ]
        if job.role == "qa":
            return await qa_result(self, report, True, "\n".join(lines), commits, files)
        lines.append(f"Test run `{report.run.command}`: {report.description}.")
        if job.role in CHANGE_ROLES and not files:
            lines.insert(0, "The coding agent changed nothing in the workspace.")
            return self.result(Verdict.FAIL, "\n".join(lines), test_run=report.run, escalate=True)
        return self.result(
            Verdict.PASS if report.run.passed else Verdict.FAIL,
            "\n".join(lines),
            test_run=report.run,
            commits=commits,
            files_changed=files,
        )


async def _head(root: Path) -> str | None:
    code, out = await gitrepo.git(root, "rev-parse", "-q", "--verify", "HEAD", check=False)
    return out.strip() if code == 0 else None


async def _commits_since(root: Path, before: str | None) -> list[str]:
    rng = f"{before}..HEAD" if before else "HEAD"
    code, out = await gitrepo.git(root, "rev-list", "--reverse", rng, check=False)
    return out.split() if code == 0 else []
