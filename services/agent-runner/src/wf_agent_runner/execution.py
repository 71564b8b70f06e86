"""Run one job to an outcome: a Result to publish (then ack, or term for errors), or a retry later.

Failure policy (a job must never loop forever):
- model server unreachable (`LLMUnavailable`, or any retryable LLMError): retry with the configured
  `runner.retry_delays` while deliveries remain; on the last delivery an `error` Result that carries
  the adapter's message (it names the URL and the fix), then term;
- anything else that goes wrong (model missing, workspace unusable, no sandbox available, git
  failing, the stage's time limit, a bug): an `error` Result with the message, then term.

Every job gets a sandbox (`sandbox.backend`) for the commands its agent runs, opened on its first
command and closed, with everything it started, when the job ends. Backend `none` is said on every
job: as an error event and in the Result's summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from nats.js import JetStreamContext
from wf_common.config import WorkflowConfig
from wf_common.jobs import ErrorInfo, Job, Result, Usage, utcnow
from wf_common.states import Verdict

from wf_agent_runner import gitrepo, worktrees
from wf_agent_runner.agents import AgentContext, agent_for
from wf_agent_runner.agents.base import Agent, make_result
from wf_agent_runner.agents.cli import CliAgent
from wf_agent_runner.confined import ConfinementError
from wf_agent_runner.llm import LLMError, LLMModelNotFound, LLMUnavailable, build_adapter
from wf_agent_runner.output import OutputSink, Transcript, transcript_path
from wf_agent_runner.sandbox import Sandbox, SandboxError, cleanup_leftovers, resolve_backend
from wf_agent_runner.sandbox.factory import LazySandbox
from wf_agent_runner.tools import RunLimits
from wf_agent_runner.turns import TurnGate
from wf_agent_runner.workspace import Workspace, WorkspaceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    result: Result | None = None  # publish this
    retry_in: float | None = None  # or: nak with this delay
    terminate: str | None = None  # after publishing, term (with this reason) instead of ack
    waiting_reason: str | None = None  # with retry_in: why the job waits (the adapter's message)
    waiting_url: str | None = None  # and for which server


class JobFailed(Exception):
    """An error that ends the job with an `error` Result."""

    def __init__(self, kind: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable


def retry_delay(delays: list[float], delivery: int) -> float:
    if not delays:
        return 5.0
    return delays[min(delivery, len(delays)) - 1]


class JobExecutor:
    def __init__(
        self,
        workflow: WorkflowConfig,
        js: JetStreamContext | None,
        *,
        runner_id: str,
        test_timeout: float = 600.0,
    ) -> None:
        self.workflow = workflow
        self.js = js
        self.runner_id = runner_id
        self.test_timeout = test_timeout
        self._swept = False

    async def _sandbox(self, job: Job, root: str) -> Sandbox:
        config = self.workflow.sandbox
        if not self._swept:  # once per runner process: what a previous run of it left behind
            self._swept = True
            await cleanup_leftovers(config, self.runner_id)
        try:
            backend = await asyncio.to_thread(resolve_backend, config)
        except SandboxError as err:
            raise JobFailed("sandbox", f"the agent job was refused: {err}") from None
        labels = {
            "wf.project": job.project.slug,
            "wf.task": job.task.key,
            "wf.execution": str(job.job_id),
            "wf.runner": self.runner_id,
        }
        return LazySandbox(config, root, labels, backend=backend, lifetime=job.timeout_seconds)

    async def execute(self, job: Job, delivery: int, turns: TurnGate | None = None) -> Outcome:
        started = utcnow()
        sink = OutputSink(self.js, job, actor=f"agent:{job.role}")
        agent: Agent | None = None
        sandbox: Sandbox | None = None

        async def failed(err: JobFailed) -> Outcome:
            return await self._failed(job, sink, started, agent.meter.usage if agent else Usage(), err)

        try:
            # The task's own worktree when it has one (per-task branches), else the project's workspace.
            root = Workspace(job.project.workspace).root
            sink.transcript = Transcript(transcript_path(root, job))
            sink.record(
                "delivery", delivery=delivery, runner_id=self.runner_id, job=job.model_dump(mode="json")
            )
            agent_cls = agent_for(job.role)  # before the adapter: an unknown role must not leak a client
            job = self._with_project_settings(job)
            checkout = await worktrees.prepare(job, self.workflow.git, sink)
            work_root = Workspace(checkout.work_tree).root if checkout else root
            sandbox = await self._sandbox(job, str(work_root))  # the task's worktree, at /workspace
            if sandbox.warning:
                await sink.emit("log", f"warning: {sandbox.warning}")
            llm = build_adapter(self.workflow.llm_backend, job.role, self.workflow.llm_backends)
            sc = self.workflow.sandbox
            ctx = AgentContext(
                job,
                llm,
                sink,
                work_root,
                runner_id=self.runner_id,
                test_timeout=self.test_timeout,
                turns=turns,
                sandbox=sandbox,
                guards=self.workflow.guards,
                run_limits=RunLimits(sc.run_timeout_seconds, sc.run_timeout_max_seconds),
                e2e_timeout=self.workflow.agents.for_project(job.project.slug).e2e_timeout_seconds,
                e2e_artifacts_dir=self.workflow.agents.for_project(job.project.slug).e2e_artifacts_dir,
            )
            if turns is not None:  # pause freezes the job's sandbox (contract #4)
                turns.sandbox_of = lambda: ctx.sandbox
            agent = self._agent(agent_cls, ctx)
            with gitrepo.trusted_worktree(checkout) if checkout else contextlib.nullcontext():
                result = await self._run(agent)
            result = result.model_copy(update={"usage": self.priced(result.usage)})
            if sandbox.warning:
                result = result.model_copy(
                    update={"summary": f"{result.summary}\n\nWarning: {sandbox.warning}"}
                )
            sink.record("result", result=result.model_dump(mode="json"))
            return Outcome(result=result)
        except LLMError as err:
            if not err.retryable:
                kind = "llm_model_not_found" if isinstance(err, LLMModelNotFound) else "llm_error"
                return await failed(JobFailed(kind, err.message))
            if delivery < self.workflow.bus.max_deliver:
                delay = retry_delay(self.workflow.runner.retry_delays, delivery)
                await sink.emit("error", f"{err.message} (delivery {delivery}; trying again in {delay:g}s)")
                url = (err.url or self.workflow.llm_backend.host).removesuffix("/api/chat")
                return Outcome(retry_in=delay, waiting_reason=err.message, waiting_url=url)
            kind = "llm_unavailable" if isinstance(err, LLMUnavailable) else "llm_error"
            return await failed(JobFailed(kind, err.message, retryable=True))
        except JobFailed as err:
            return await failed(err)
        except (WorkspaceError, ConfinementError, gitrepo.GitError) as err:
            return await failed(
                JobFailed("git" if isinstance(err, gitrepo.GitError) else "workspace", str(err))
            )
        except SandboxError as err:
            return await failed(JobFailed("sandbox", str(err)))
        except Exception as err:
            log.exception("job %s crashed", job.idempotency_key)
            return await failed(
                JobFailed("runner_crash", f"the agent runner failed: {type(err).__name__}: {err}")
            )
        finally:
            if sandbox is not None:
                await sandbox.close()  # everything the job started ends with it
            await sink.aclose()

    def _with_project_settings(self, job: Job) -> Job:
        """The job with what config says of its project (the E2E command) where the job has none."""
        settings = self.workflow.agents.for_project(job.project.slug)
        if job.project.e2e_command or not settings.e2e_command:
            return job
        project = job.project.model_copy(update={"e2e_command": settings.e2e_command})
        return job.model_copy(update={"project": project})

    def _agent(self, agent_cls: type[Agent], ctx: AgentContext) -> Agent:
        """The stage's executor: the role's own agent, or an external coding agent CLI."""
        stage = self.workflow.pipeline.stage(ctx.job.stage)
        if stage is not None and stage.executor.kind == "cli":
            return CliAgent(ctx, stage.executor, agent_cls.instructions)
        return agent_cls(ctx)

    def priced(self, usage: Usage) -> Usage:
        """The usage with its money, for models in config `cost.prices` (the cost ledger)."""
        cost = self.workflow.cost.cost_usd(usage.model, usage.prompt_tokens, usage.completion_tokens)
        return usage if cost is None else usage.model_copy(update={"cost_usd": round(cost, 6)})

    async def _run(self, agent: Agent) -> Result:
        job = agent.job
        deadline = asyncio.timeout(job.timeout_seconds)
        if agent.ctx.turns is not None:
            agent.ctx.turns.deadline = deadline  # time spent paused does not count
        try:
            async with deadline:
                await gitrepo.ensure_repo(agent.ctx.workspace)
                return await agent.run()
        except TimeoutError:
            if not deadline.expired():
                raise
            raise JobFailed(
                "timeout",
                f"the {job.role.upper()} agent did not finish within the stage's limit of "
                f"{job.timeout_seconds}s (pipeline.stages[].timeout_seconds in config.yaml)",
            ) from None
        finally:
            await agent.ctx.llm.aclose()

    async def _failed(
        self, job: Job, sink: OutputSink, started: datetime, usage: Usage, err: JobFailed
    ) -> Outcome:
        await sink.emit("error", err.message, error_kind=err.kind)
        result = make_result(
            job,
            Verdict.ERROR,
            err.message,
            runner_id=self.runner_id,
            started_at=started,
            usage=self.priced(usage),
            error=ErrorInfo(kind=err.kind, message=err.message, retryable=err.retryable),
        )
        sink.record("result", result=result.model_dump(mode="json"))
        return Outcome(result=result, terminate=f"{err.kind}: {err.message}"[:500])
