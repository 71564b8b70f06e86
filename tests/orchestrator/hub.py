"""A test harness around an in-process orchestrator: send commands like the CLI, play the agent runner
(pull jobs from the stage consumers, publish Results), and read what a user would see (the task rows
the board shows, the events on wf.events)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from wf_common import bus, subjects
from wf_common.commands import COMMAND_ADAPTER, CommandReply
from wf_common.config import WorkflowConfig
from wf_common.db.tables import bugs, executions, handoffs, projects, tasks
from wf_common.events import parse_event
from wf_common.jobs import Breakdown, Job, Result, TestRun
from wf_orchestrator.app import Orchestrator
from wf_orchestrator.settings import OrchestratorSettings

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, within: float = 10.0, what: str = "", every: float = 0.02
) -> T:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or check}")
        await asyncio.sleep(every)


class CommandFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Hub:
    def __init__(self, nats_url: str, database_url: str, workflow: WorkflowConfig, **settings: Any) -> None:
        self.nats_url = nats_url
        self.database_url = database_url
        self.workflow = workflow
        self.settings = OrchestratorSettings(
            nats_url=nats_url,
            database_url=database_url,
            **({"migrate_on_start": False, "sweep_interval_seconds": 0.2} | settings),
        )
        self.orchestrator: Orchestrator | None = None
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self.db: AsyncEngine = create_async_engine(database_url, poolclass=NullPool)
        self.events: list[Any] = []
        self._pulls: dict[str, Any] = {}

    # ---------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.orchestrator = Orchestrator(self.settings, workflow=self.workflow)
        await self.orchestrator.start()
        await self.connect_only()

    async def connect_only(self) -> None:
        """The test's own connection (commands, jobs, events), for orchestrators run elsewhere."""
        if self.nc is None:
            self.nc = await nats.connect(self.nats_url)
            self.js = self.nc.jetstream()

            async def collect(msg: Any) -> None:
                self.events.append(parse_event(msg.data))

            await self.nc.subscribe(f"{subjects.EVENTS_PREFIX}.>", cb=collect)

    async def stop_orchestrator(self) -> None:
        if self.orchestrator is not None:
            await self.orchestrator.stop()
            self.orchestrator = None

    async def restart(self) -> None:
        await self.stop_orchestrator()
        await self.start()

    async def close(self) -> None:
        await self.stop_orchestrator()
        if self.nc is not None:
            await self.nc.close()
        await self.db.dispose()

    # ----------------------------------------------------------------------------------- commands

    async def reply(self, kind: str, **fields: Any) -> CommandReply:
        assert self.nc is not None
        cmd = COMMAND_ADAPTER.validate_python({"type": kind, **fields})
        raw = await bus.request(self.nc, subjects.command_subject(kind), cmd, timeout=10)
        return CommandReply.model_validate_json(raw)

    async def cmd(self, kind: str, **fields: Any) -> dict[str, Any]:
        reply = await self.reply(kind, **fields)
        if not reply.ok:
            assert reply.error is not None
            raise CommandFailed(reply.error.code, reply.error.message)
        return reply.data or {}

    async def project(self, slug: str, workspace: Any, **fields: Any) -> dict[str, Any]:
        return await self.cmd("create_project", slug=slug, workspace=str(workspace), **fields)

    # ---------------------------------------------------------------------------- playing a runner

    async def next_job(self, stage: str, within: float = 5.0) -> Job:
        """The next job a runner of `stage` would get (acked, as a runner that finished it)."""
        assert self.js is not None
        if stage not in self._pulls:
            self._pulls[stage] = await self.js.pull_subscribe_bind(
                durable=subjects.job_consumer(stage), stream=subjects.JOBS_STREAM
            )
        msgs = await self._pulls[stage].fetch(1, timeout=within)
        await msgs[0].ack()
        return Job.model_validate_json(msgs[0].data)

    async def no_job(self, stage: str, wait: float = 0.5) -> None:
        try:
            job = await self.next_job(stage, within=wait)
        except (TimeoutError, nats.errors.TimeoutError):
            return
        raise AssertionError(f"unexpected {stage} job for {job.task.key}")

    async def finish(self, job: Job, status: str = "pass", **fields: Any) -> Result:
        assert self.js is not None
        result = Result.answering(
            job,
            status,
            fields.pop("summary", f"{job.stage} {status}"),
            runner_id="test-runner",
            **fields,
        )
        await bus.publish(
            self.js, subjects.result_subject(job.stage), result, msg_id=f"{job.idempotency_key}/result"
        )
        return result

    async def breakdown(self, job: Job, *tasks_: dict[str, Any]) -> Result:
        return await self.finish(
            job,
            "pass",
            summary="broke the idea down",
            breakdown=Breakdown.model_validate({"tasks": list(tasks_)}),
        )

    async def fail_tests(self, job: Job, failed: list[str], output: str = "E   assert 5 == 6") -> Result:
        run = TestRun(
            command="python -m pytest", exit_code=1, passed=False, failed_tests=failed, output_tail=output
        )
        return await self.finish(job, "fail", summary=f"{len(failed)} test(s) failed\n{output}", test_run=run)

    # -------------------------------------------------------------------------- what a user sees

    async def task(self, key: str, project: str = "demo") -> dict[str, Any]:
        async with self.db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(tasks)
                        .join(projects, projects.c.id == tasks.c.project_id)
                        .where(projects.c.slug == project, tasks.c.task_key == key)
                    )
                )
                .mappings()
                .one()
            )
        return dict(row)

    async def state(self, key: str, project: str = "demo") -> tuple[str, str]:
        t = await self.task(key, project)
        return t["current_stage"], t["state"]

    async def wait_state(self, key: str, stage: str, state: str, *, within: float = 10.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            t = await self.task(key)
            return t if (t["current_stage"], t["state"]) == (stage, state) else None

        return await eventually(check, within=within, what=f"{key} to be {state} in {stage}")

    async def handoffs(self, key: str) -> list[dict[str, Any]]:
        t = await self.task(key)
        async with self.db.connect() as conn:
            rows = await conn.execute(
                select(handoffs).where(handoffs.c.task_id == t["id"]).order_by(handoffs.c.id)
            )
            return [dict(r) for r in rows.mappings()]

    async def path(self, key: str) -> list[tuple[str, str]]:
        return [(h["from_stage"], h["to_stage"]) for h in await self.handoffs(key)]

    async def executions(self, key: str) -> list[dict[str, Any]]:
        t = await self.task(key)
        async with self.db.connect() as conn:
            rows = await conn.execute(
                select(executions).where(executions.c.task_id == t["id"]).order_by(executions.c.id)
            )
            return [dict(r) for r in rows.mappings()]

    async def bugs(self, key: str) -> list[dict[str, Any]]:
        t = await self.task(key)
        async with self.db.connect() as conn:
            rows = await conn.execute(select(bugs).where(bugs.c.task_id == t["id"]).order_by(bugs.c.id))
            return [dict(r) for r in rows.mappings()]

    def events_of(self, type_: str, key: str | None = None) -> list[Any]:
        return [e for e in self.events if e.type == type_ and (key is None or e.task_key == key)]
