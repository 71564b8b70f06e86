"""What every agent shares: the job's context, LLM calls with usage accounting and streaming, the
tool-calling loop, commits, and building the `Result`."""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from wf_common.config import GuardConfig
from wf_common.jobs import Job, Result, Usage, utcnow
from wf_common.states import Verdict

from wf_agent_runner import gitrepo, jobchanges
from wf_agent_runner.guards import LoopGuard, task_tokens_so_far
from wf_agent_runner.llm import ChatResult, LLMAdapter, Message
from wf_agent_runner.output import OutputSink, clip
from wf_agent_runner.prompts import Prompt, build_prompt, gather_context
from wf_agent_runner.sandbox import Sandbox
from wf_agent_runner.tools import Finish, RunLimits, ToolBox, ToolOutcome
from wf_agent_runner.turns import TurnGate
from wf_agent_runner.workspace import Workspace

TOOL_CALL_EVENT_CHARS = 500
NUDGE = (
    "You replied without calling a tool. Continue the task using the tools, and call "
    "finish(status, summary) when done: status 'pass' if the task is complete, 'fail' if it cannot be done."
)

WRITE_TOOLS = ("write_file", "edit_file")
LOOK_TOOLS = ("list_files", "read_file", "search")
SAME_LOOK = (
    "You already looked at exactly this and its answer is above. Now act: write or edit the files "
    "the task needs, or call finish."
)
SAME_WRITE = (
    "You made exactly this change already: the file has it. If the task is complete call "
    "finish(status='pass', summary=...), otherwise finish(status='fail', summary=<what is missing>)."
)
MUST_WRITE = (
    "Nothing is written yet: call write_file(path, content) with the complete file the task needs "
    "(or edit_file for a small change to an existing file)."
)
SAME_FAILURE = (
    "You made exactly this call before and it failed the same way (the error is above): repeating it "
    "will not help. Do something else: to change a file you cannot match or find, write the whole file "
    "with write_file(path, content); when you are done, call finish."
)
LAST_TURN = (
    "This is your last turn: call finish now. status 'pass' only if the task is complete, "
    "otherwise 'fail' with what is missing."
)


@dataclass(frozen=True)
class Objection:
    """A refused finish: what the model is told, and why the next turn accepts fewer tools (one of
    the narrowing messages above, or "")."""

    text: str
    narrow: str = ""


@dataclass
class AgentContext:
    job: Job
    llm: LLMAdapter
    out: OutputSink
    workspace: Path  # already resolved and checked to be a directory
    runner_id: str = ""
    test_timeout: float = 600.0
    sandbox: Sandbox | None = None  # where commands run (run tool, test command, scanners)
    guards: GuardConfig = field(default_factory=GuardConfig)
    run_limits: RunLimits = field(default_factory=RunLimits)
    turns: TurnGate | None = None  # pause and mid-run feedback before each model turn (turns.py)
    e2e_timeout: float = 600.0  # TESTING's end-to-end command
    e2e_artifacts_dir: str = "test-results"  # where it leaves screenshots, traces, logs


class UsageMeter:
    """Sums usage over an agent's LLM calls; `duration_ms` is time spent in the model."""

    def __init__(self, model: str) -> None:
        self.usage = Usage(model=model)

    def add(self, reply: ChatResult) -> None:
        u = self.usage
        self.usage = Usage(
            model=reply.model or u.model,
            llm_calls=u.llm_calls + 1,
            prompt_tokens=u.prompt_tokens + reply.usage.prompt_tokens,
            completion_tokens=u.completion_tokens + reply.usage.completion_tokens,
            duration_ms=round(u.duration_ms + reply.usage.duration_ms, 1),
        )


@dataclass(frozen=True)
class LoopOutcome:
    finish: Finish | None
    turns: int
    reason: str = ""  # why there is no finish
    guard: bool = False  # a loop guard stopped it: a human must look


def make_result(
    job: Job,
    status: Verdict,
    summary: str,
    *,
    runner_id: str,
    started_at: datetime,
    usage: Usage | None = None,
    **fields: Any,
) -> Result:
    return Result.answering(
        job,
        status,
        summary,
        usage=usage or Usage(),
        runner_id=runner_id,
        started_at=started_at,
        finished_at=utcnow(),
        **fields,
    )


class Agent(ABC):
    role: ClassVar[str]
    tools: ClassVar[tuple[str, ...]] = ()
    instructions: ClassVar[str] = ""

    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.job = ctx.job
        self.out = ctx.out
        self.meter = UsageMeter(ctx.llm.model)
        self.started_at = utcnow()
        self.stopped_by_guard = False
        self.commands_run: list[str] = []  # what the agent ran with the `run` tool
        # The worktree's dirty state when the job started (`take_baseline`): with it, `commit` also
        # commits what the agent changed by other means than its file tools (`run`).
        self.baseline: jobchanges.Baseline | None = None

    @abstractmethod
    async def run(self) -> Result: ...

    # -- building blocks -----------------------------------------------------------------------------

    def result(self, status: Verdict, summary: str, **fields: Any) -> Result:
        if self.stopped_by_guard:
            fields["escalate"] = True
        return make_result(
            self.job,
            status,
            summary,
            runner_id=self.ctx.runner_id,
            started_at=self.started_at,
            usage=self.meter.usage,
            **fields,
        )

    async def prompt(self) -> Prompt:
        context = await gather_context(self.ctx.workspace, self.job)
        prompt = build_prompt(self.job, context, instructions=self.instructions)
        self.out.record("prompt", system=prompt.system, user=prompt.user)
        return prompt

    async def chat(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        format: dict[str, Any] | str | None = None,
        accepted: Collection[str] | None = None,
    ) -> ChatResult:
        if self.ctx.turns is not None:
            messages.extend(await self.ctx.turns.before_turn())
        reply = await self.ctx.llm.chat(
            messages, tools=tools, format=format, on_token=self.out.token, accepted=accepted
        )
        await self.out.flush()
        self.meter.add(reply)
        self.out.record(
            "assistant",
            content=reply.content,
            tool_calls=[{"name": c.name, "arguments": c.arguments} for c in reply.tool_calls],
            model=reply.model,
            done_reason=reply.done_reason,
            prompt_tokens=reply.usage.prompt_tokens,
            completion_tokens=reply.usage.completion_tokens,
        )
        return reply

    def toolbox(self, ws: Workspace) -> ToolBox:
        """This agent's tools on `ws`; `run` (and the test command) use the job's sandbox."""
        names = [n for n in self.tools if n != "run" or self.ctx.sandbox is not None]
        return ToolBox(
            ws, names, sandbox=self.ctx.sandbox, limits=self.ctx.run_limits, on_line=self.out.command_output
        )

    async def _guard_stop(self, reason: str, turn: int) -> LoopOutcome:
        self.stopped_by_guard = True
        await self.out.emit("error", reason)
        return LoopOutcome(None, turn, reason, guard=True)

    async def tool_loop(self, toolbox: ToolBox, prompt: Prompt) -> LoopOutcome:
        """Chat with tools until the agent calls finish, at most `job.max_turns` model calls, or until
        a loop guard (token budget, repeated call) stops it."""
        messages = prompt.messages()
        max_turns = max(1, self.job.max_turns)
        nudged = False
        spent = await asyncio.to_thread(task_tokens_so_far, self.ctx.workspace, self.job)
        guard = LoopGuard(self.ctx.guards, task_tokens_before=spent)
        made: set[str] = set()  # the calls that succeeded so far, as JSON
        failed: set[str] = set()  # the calls that failed so far, as JSON
        narrow = ""  # why the next turn accepts fewer tools: SAME_WRITE, SAME_LOOK, SAME_FAILURE, ...
        excluded = ""  # the tool a SAME_FAILURE turn does not accept
        # Every turn sends the same system prompt and the same tool list, so the model server's
        # prompt-prefix cache (llama.cpp, Ollama, vLLM; emulated calls describe the tools in the system
        # prompt) keeps serving the conversation so far. A narrowed turn says so in a user message
        # and refuses calls to the other tools, with the refusal fed back like any tool error.
        schemas = toolbox.schemas
        for turn in range(1, max_turns + 1):
            if turn == max_turns and max_turns > 1:
                narrow = LAST_TURN
            offered = self._offered(toolbox, narrow, excluded)
            current = (narrow, excluded)
            if narrow and offered != set(toolbox.names):
                only = ", ".join(sorted(offered))
                told = f"{narrow} Only {only} is accepted on this turn."
                messages.append({"role": "user", "content": told})
                await self.out.emit("log", f"turn {turn}: only {only} accepted")
            else:
                narrow, excluded = "", ""
            reply = await self.chat(messages, tools=schemas, accepted=offered if narrow else None)
            if reason := guard.after_reply(self.meter.usage):
                return await self._guard_stop(reason, turn)
            messages.append(reply.as_message())
            if not reply.tool_calls:
                if nudged:  # reminded once already: it is not going to use the tools
                    return LoopOutcome(
                        None, turn, "agent stopped without calling finish (no tool call after a reminder)"
                    )
                nudged = True
                messages.append({"role": "user", "content": NUDGE})
                await self.out.emit("log", "no tool call in the reply; reminded the agent to call finish")
                continue
            refused = False
            for call in reply.tool_calls:
                if reason := guard.before_call(call.name, call.arguments):
                    return await self._guard_stop(reason, turn)
                if call.name not in offered:
                    refusal = (
                        f"error: {call.name} is not accepted on this turn; not run. "
                        f"Call {' or '.join(sorted(offered))}."
                    )
                    await self.out.emit("error", f"{call.name} is not accepted on this turn; not run")
                    messages.append({"role": "tool", "content": refusal, "tool_name": call.name})
                    refused = True
                    continue
                seen = json.dumps([call.name, call.arguments], sort_keys=True, default=str)
                # The same change again after it succeeded: it is done. A failed write repeated is
                # not (the error goes back; the repeated-call guard stops a loop).
                if seen in made and call.name in WRITE_TOOLS:
                    narrow = SAME_WRITE
                elif seen in made and call.name in LOOK_TOOLS:  # the same look again: time to act
                    narrow = SAME_LOOK
                args = json.dumps(call.arguments, ensure_ascii=False, default=str)
                await self.out.emit(
                    "tool_call",
                    f"{call.name}({clip(args, TOOL_CALL_EVENT_CHARS)})",
                    name=call.name,
                    arguments=call.arguments,
                )
                if call.name == "run" and isinstance(call.arguments.get("command"), str):
                    self.commands_run.append(call.arguments["command"])
                # File IO off the event loop (acall): heartbeats and output events keep flowing.
                outcome = await toolbox.acall(call.name, call.arguments)
                if call.name != "finish" and outcome.ok:
                    made.add(seen)
                elif call.name != "finish":
                    if seen in failed:  # the same failing call again: the next turn offers another tool
                        narrow, excluded = SAME_FAILURE, call.name
                    failed.add(seen)
                objection = await self.refuse_finish(outcome.finish) if outcome.finish else None
                if objection:
                    await self.out.emit("log", f"finish refused: {objection.text}")
                    outcome = ToolOutcome(f"error: {objection.text}", ok=False)
                    narrow = objection.narrow or narrow
                await self.out.emit("tool_result", outcome.text, name=call.name, ok=outcome.ok)
                messages.append({"role": "tool", "content": outcome.text, "tool_name": call.name})
                if outcome.finish is not None:  # calls after finish in the same reply are ignored
                    return LoopOutcome(outcome.finish, turn)
            if (narrow, excluded) == current and (not refused or narrow == MUST_WRITE):
                # It used what was accepted (or, told to write, did not: once is enough; its next
                # finish stands): the next turn accepts every tool again.
                narrow, excluded = "", ""
        return LoopOutcome(None, max_turns, f"agent did not finish within {max_turns} turns")

    async def refuse_finish(self, finish: Finish) -> Objection | None:
        """Why this finish cannot stand yet (fed back to the model as the tool's error), or None. An
        agent refuses each reason once at most, so that its next finish stands: the loop ends."""
        return None

    @staticmethod
    def _offered(toolbox: ToolBox, narrow: str, excluded: str = "") -> set[str]:
        """The tools the next turn accepts. Small models loop; a repeat narrows the choice (and the
        message `narrow` says why): the last turn, or a change made a second time, offers only
        finish (a model that lost track still says where it stands); a second identical look
        (list_files, read_file, search) offers only the tools that act; a call that failed twice
        the same way (a path that does not exist, an edit whose text is not there) offers every
        tool but that one."""
        names = set(toolbox.names)
        if narrow == SAME_FAILURE and names - {excluded}:
            return names - {excluded}
        if narrow in (LAST_TURN, SAME_WRITE) and "finish" in names:
            return {"finish"}
        if narrow == MUST_WRITE and names & set(WRITE_TOOLS):
            return names & set(WRITE_TOOLS)
        if narrow == SAME_LOOK and names - set(LOOK_TOOLS):
            return names - set(LOOK_TOOLS)
        return names

    async def take_baseline(self) -> None:
        """Record the worktree's uncommitted state now, before the agent acts (jobchanges.py)."""
        self.baseline = await jobchanges.snapshot(self.ctx.workspace)

    async def changed_paths(self, ws: Workspace | None, *, report: bool = False) -> list[str]:
        """What the agent changed so far: the paths its file tools wrote that differ from HEAD, plus,
        after `take_baseline`, everything else that changed in the worktree since (jobchanges.py).
        With `report`, what is left uncommitted and why goes to the job's log."""
        root = self.ctx.workspace
        paths = await gitrepo.changed_paths(root, list(ws.changed)) if ws is not None else []
        if self.baseline is None:
            return paths
        changes = await jobchanges.since(root, self.baseline)
        if report and (note := changes.refusal_note()):
            await self.out.emit("log", note)
        return paths + [p for p in changes.paths if p not in paths]

    async def commit(self, ws: Workspace, *, subject: str, body: str) -> tuple[list[str], list[str]]:
        """Commit what the agent changed (`changed_paths`): (commits, files changed)."""
        sha = await gitrepo.commit_job(
            self.ctx.workspace,
            await self.changed_paths(ws, report=True),
            subject=subject,
            body=body,
            key=self.job.idempotency_key,
            author=gitrepo.Author.agent(self.role),
        )
        if sha is None:
            return [], []
        files = await gitrepo.commit_files(self.ctx.workspace, sha)
        await self.out.emit("log", f"committed {sha[:10]}: {subject} ({len(files)} files)")
        return [sha], files

    async def earlier_delivery(self) -> Result | None:
        """A pass Result rebuilt from this job's commit, if an earlier delivery already made it."""
        root = self.ctx.workspace
        sha = await gitrepo.find_job_commit(root, self.job.idempotency_key)
        if sha is None:
            return None
        files = await gitrepo.commit_files(root, sha)
        body = await gitrepo.commit_body(root, sha)
        await self.out.emit(
            "log", f"this job was already committed as {sha[:10]} by an earlier delivery; reusing it"
        )
        return self.result(Verdict.PASS, body, commits=[sha], files_changed=files)


def phrase(title: str) -> str:
    """A title to follow a verb: "Add price parser" -> "add price parser" (but "API docs" stays)."""
    title = " ".join(title.split()).rstrip(".")
    return title[:1].lower() + title[1:] if title[1:2].islower() else title


def first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def after_first_line(text: str) -> str:
    """The summary without its first line, for a commit body under a subject made from that line."""
    lines = text.strip().splitlines()
    return "\n".join(lines[1:]).strip()


def commit_subject(task_key: str, summary: str, fallback: str) -> str:
    """'T-002: Add price parser': the summary's first line (markdown stripped), prefixed by the task key."""
    line = first_line(summary).lstrip("#*-> ").rstrip(".").strip() or fallback
    prefix = f"{task_key}:"
    return line if line.startswith(prefix) else f"{prefix} {line}"
