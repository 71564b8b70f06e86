"""PM: turns an idea into a task breakdown through structured output (no tools).

The model is asked for JSON in the published schema (`format`), and the answer is validated with the
same model the orchestrator reads. An invalid answer is sent back with the validation error, up to
`job.schema_retries` times; if it never validates, a human looks (`escalate`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import ValidationError
from wf_common.jobs import Breakdown, Result, breakdown_json_schema
from wf_common.states import Verdict

from wf_agent_runner import confined, gitrepo
from wf_agent_runner.agents.base import Agent
from wf_agent_runner.agents.repair import BreakdownUnreadable, read_breakdown
from wf_agent_runner.llm import Message

TASKS_FILE = ".workflow/tasks.json"
ERROR_CHARS = 1500


def validation_error_text(err: ValidationError | ValueError) -> str:
    if isinstance(err, ValidationError):
        lines = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
            lines.append(f"{loc}: {e['msg']}")
        text = "; ".join(lines)
    else:
        text = str(err)
    return text[:ERROR_CHARS]


class PMAgent(Agent):
    role = "pm"
    instructions = """\
Break the idea below into tasks for the DEV, QA, SEC and DOCS agents. Do not write code.
Answer with one JSON object only (no prose, no markdown fences) that matches this shape:
{"tasks": [{"title": str, "description": str, "acceptance_criteria": [str, ...],
            "priority": 1-10 (1 = low, 10 = high), "depends_on": [indexes of earlier tasks, 0-based]}]}
Each task must be completable in one development session and have testable acceptance criteria."""

    async def run(self) -> Result:
        if done := await self._earlier_breakdown():
            return done
        prompt = await self.prompt()
        messages = prompt.messages()
        schema = breakdown_json_schema()
        attempts = 1 + max(0, self.job.schema_retries)
        error = ""
        for attempt in range(1, attempts + 1):
            reply = await self.chat(messages, format=schema)
            try:
                breakdown, repairs = read_breakdown(reply.content)
            except (ValidationError, BreakdownUnreadable) as err:
                error = validation_error_text(err)
                await self.out.emit("error", f"breakdown attempt {attempt}/{attempts} is invalid: {error}")
                messages += [{"role": "assistant", "content": reply.content}, _retry_message(error)]
                continue
            if repairs:
                await self.out.emit("log", "read the breakdown leniently: " + "; ".join(repairs))
            return await self._passed(breakdown)
        return self.result(
            Verdict.FAIL,
            f"the PM's task breakdown did not match the schema after {attempts} attempts; "
            f"last validation error: {error}",
            escalate=True,
        )

    async def _passed(self, breakdown: Breakdown) -> Result:
        root = self.ctx.workspace
        # Through the confined opener: a planted symlink or hard link cannot send it outside the workspace.
        document = json.dumps(self._tasks_document(breakdown), indent=2) + "\n"
        await asyncio.to_thread(confined.write_under, root, TASKS_FILE, document.encode("utf-8"))
        sha = await gitrepo.commit_job(
            root,
            [TASKS_FILE],
            subject=f"PM: task breakdown for {self.job.task.key}",
            body="\n".join(f"- {t.title}" for t in breakdown.tasks),
            key=self.job.idempotency_key,
            author=gitrepo.Author.agent(self.role),
        )
        commits = [sha] if sha else []
        titles = "; ".join(f"{i}. {t.title}" for i, t in enumerate(breakdown.tasks))
        await self.out.emit("log", f"breakdown: {len(breakdown.tasks)} tasks")
        return self.result(
            Verdict.PASS,
            f"Broke {self.job.task.key} into {len(breakdown.tasks)} tasks: {titles}",
            breakdown=breakdown,
            commits=commits,
            files_changed=[TASKS_FILE] if sha else [],
        )

    def _tasks_document(self, breakdown: Breakdown) -> dict[str, Any]:
        return {
            "idea": {
                "key": self.job.task.key,
                "title": self.job.task.title,
                "text": self.job.idea or self.job.task.description,
            },
            **breakdown.model_dump(mode="json"),
        }

    async def _earlier_breakdown(self) -> Result | None:
        """A redelivered job returns the breakdown its first delivery committed, not a new one."""
        root = self.ctx.workspace
        sha = await gitrepo.find_job_commit(root, self.job.idempotency_key)
        if sha is None:
            return None
        try:
            doc = json.loads(await gitrepo.show_file(root, sha, TASKS_FILE))
            breakdown = Breakdown.model_validate({"tasks": doc["tasks"]})
        except (gitrepo.GitError, ValueError, KeyError, TypeError):
            return None  # not readable: make a new breakdown
        await self.out.emit("log", f"reusing the breakdown committed as {sha[:10]} by an earlier delivery")
        return self.result(
            Verdict.PASS,
            f"Broke {self.job.task.key} into {len(breakdown.tasks)} tasks (committed earlier as {sha[:10]})",
            breakdown=breakdown,
            commits=[sha],
            files_changed=[TASKS_FILE],
        )


def _retry_message(error: str) -> Message:
    return {
        "role": "user",
        "content": (
            f"Your answer is not a valid task breakdown: {error}\n"
            "Answer again with the corrected JSON object only, following the schema exactly."
        ),
    }
