"""DOCS: updates the documentation with the file tools and commits it. The stage fails, with the
reason, when the task's diff changes code and no documentation file changed (README, docs/,
CHANGELOG, API docs)."""

from __future__ import annotations

from wf_common.jobs import Result
from wf_common.states import Verdict

from wf_agent_runner import taskdiff
from wf_agent_runner.agents.base import Agent, phrase
from wf_agent_runner.agents.doccheck import missing_docs
from wf_agent_runner.tools import FILE_TOOLS
from wf_agent_runner.workspace import Workspace


class DocsAgent(Agent):
    role = "docs"
    tools = FILE_TOOLS
    instructions = """\
You document the change the task made. Use list_files and read_file to see what changed, then update
README, CHANGELOG, API docs and comments with write_file/edit_file. Keep examples runnable.
Your changes are committed for you when you finish.
Call finish(status="pass", summary=<what you documented>) when done, or finish(status="fail",
summary=<what blocks you>) if the change cannot be documented as it is."""

    async def run(self) -> Result:
        if done := await self.earlier_delivery():
            return done  # already checked when it was first delivered
        ws = Workspace(self.ctx.workspace)
        loop = await self.tool_loop(self.toolbox(ws), await self.prompt())
        if loop.finish is None or loop.finish.status == "fail":
            reason = loop.reason if loop.finish is None else loop.finish.summary
            return self.result(Verdict.FAIL, reason, files_changed=list(ws.changed))
        summary = loop.finish.summary
        commits, files = await self.commit(
            ws, subject=f"{self.job.task.key}: Document {phrase(self.job.task.title)}", body=summary
        )
        paths = await taskdiff.task_paths(self.ctx.workspace, self.job.task.key)
        if missing := missing_docs(paths + [f for f in files if f not in paths]):
            await self.out.emit("error", missing)
            return self.result(
                Verdict.FAIL, f"{missing}\n\nAgent: {summary}", commits=commits, files_changed=files
            )
        return self.result(Verdict.PASS, summary, commits=commits, files_changed=files)
