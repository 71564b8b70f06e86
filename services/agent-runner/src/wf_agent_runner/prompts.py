"""Prompts, as the seed's "How Principles Are Injected" lays them out: the core principles, the role's
principles, then the task, its acceptance criteria, human feedback, open bugs and project context.

The principles and how-to-work instructions form the system message; the task part is the first
user message. `Prompt.text` is the two joined, which is what "the prompt" means in tests and logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wf_common.jobs import BugRef, FeedbackRef, Job

from wf_agent_runner import gitrepo
from wf_agent_runner.llm import Message
from wf_agent_runner.principles import CORE_PRINCIPLES, role_principles

MAX_FILES = 200
BUG_OUTPUT_CHARS = 3000
HANDOFF_CHARS = 4000


@dataclass(frozen=True)
class ProjectContext:
    recent_commits: str = "(no commits yet)"
    files: list[str] = field(default_factory=list)
    total_files: int = 0
    test_command: str = "python -m pytest"
    handoff: dict[str, Any] = field(default_factory=dict)


async def gather_context(workspace: Path, job: Job, *, max_files: int = MAX_FILES) -> ProjectContext:
    files = await gitrepo.tracked_files(workspace)
    return ProjectContext(
        recent_commits=await gitrepo.recent_log(workspace, 10),
        files=files[:max_files],
        total_files=len(files),
        test_command=job.project.test_command or "python -m pytest",
        handoff=job.handoff,
    )


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str

    @property
    def text(self) -> str:
        return f"{self.system}\n\n{self.user}"

    def messages(self) -> list[Message]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


def build_prompt(job: Job, context: ProjectContext, *, instructions: str) -> Prompt:
    system = "\n\n".join(
        [
            CORE_PRINCIPLES.strip(),
            role_principles(job.role).strip(),
            "## How You Work\n\n" + instructions.strip(),
        ]
    )
    sections = [
        "---",
        _task(job),
        _criteria(job),
        _feedback(job),
        _bugs(job.bugs),
        _project(job, context),
    ]
    return Prompt(system=system, user="\n\n".join(s for s in sections if s))


def _task(job: Job) -> str:
    t = job.task
    parts = [f"# Your Task\n\n{t.key}: {t.title}"]
    if t.description.strip():
        parts.append(t.description.strip())
    if job.idea:
        parts.append(f"## Idea\n\n{job.idea.strip()}")
    return "\n\n".join(parts)


def _criteria(job: Job) -> str:
    items = job.task.acceptance_criteria
    body = "\n".join(f"- {c}" for c in items) if items else "(none given; infer them from the task)"
    return f"## Acceptance Criteria\n{body}"


def _where(feedback: FeedbackRef) -> str:
    """' on calc/add.py:2' for a comment on a diff line."""
    if not feedback.file:
        return ""
    return f" on {feedback.file}:{feedback.line}" if feedback.line else f" on {feedback.file}"


def _feedback(job: Job) -> str:
    if not job.feedback:
        return ""
    lines = [f"- [{f.at:%Y-%m-%d %H:%M}] {f.actor}{_where(f)}: {f.text.strip()}" for f in job.feedback]
    return "## Human Feedback (follow it; it overrides earlier instructions)\n" + "\n".join(lines)


def _bugs(bugs: list[BugRef]) -> str:
    if not bugs:
        return ""
    return "## Open Bugs (fix these)\n\n" + "\n\n".join(_bug(b) for b in bugs)


def _bug(bug: BugRef) -> str:
    parts = [f"### {bug.key}: {bug.title} (found by {bug.source_stage.upper()})"]
    if bug.description.strip():
        parts.append(bug.description.strip())
    repro = dict(bug.reproduction)
    if command := repro.pop("command", None):
        parts.append(f"Reproduce with: `{command}`")
    failed = repro.pop("failed_tests", None)
    if failed:
        parts.append("Failing tests:\n" + "\n".join(f"- {t}" for t in failed))
    output = repro.pop("output_tail", None) or repro.pop("output", None)
    if output:
        parts.append(f"Output:\n```\n{str(output)[-BUG_OUTPUT_CHARS:]}\n```")
    for key in ("exit_code", "passed", "duration_ms", "timed_out"):
        repro.pop(key, None)  # part of the test run, not useful to the reader
    if repro:
        parts.append(f"Details:\n```json\n{json.dumps(repro, indent=1, default=str)[:BUG_OUTPUT_CHARS]}\n```")
    return "\n\n".join(parts)


def _project(job: Job, ctx: ProjectContext) -> str:
    parts = ["## Project Context", f"Project: {job.project.name} ({job.project.slug})"]
    if ctx.handoff:
        parts.append("### Handoff From the Previous Stage\n" + _handoff(ctx.handoff))
    parts.append(f"### Recent Commits (git log --oneline -10)\n```\n{ctx.recent_commits}\n```")
    shown = (
        f"{len(ctx.files)} of {ctx.total_files}" if ctx.total_files > len(ctx.files) else str(len(ctx.files))
    )
    listing = "\n".join(ctx.files) if ctx.files else "(no tracked files yet)"
    parts.append(f"### Files ({shown})\n```\n{listing}\n```")
    parts.append(f"### Test Command\n`{ctx.test_command}`")
    return "\n\n".join(parts)


def _handoff(handoff: dict[str, Any]) -> str:
    rest = dict(handoff)
    summary = rest.pop("summary", None)
    text = str(summary).strip() if summary else ""
    if rest:
        text += ("\n\n" if text else "") + json.dumps(rest, indent=1, default=str)
    return text[:HANDOFF_CHARS]
