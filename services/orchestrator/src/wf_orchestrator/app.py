"""The orchestrator process, assembled: `async with Orchestrator(settings) as orch: await orch.wait()`.

Start order: NATS (topology), the lease (a standby waits here until the active orchestrator stops or
dies), database (migrations, agents), the outbox's leftovers, the pause flag, then the consumers and
the dispatcher. Stop: no new commands or results are taken, the ones in flight
finish (and are acked), published outbox rows are deleted, connections close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from types import TracebackType

from nats.aio.client import Client as NATS
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from wf_common import bus
from wf_common.config import WorkflowConfig
from wf_common.settings import async_database_url

from wf_orchestrator.advisories import DeliveryAdvisories
from wf_orchestrator.branches import wiring as branch_wiring
from wf_orchestrator.commands import CommandServer
from wf_orchestrator.control import Control
from wf_orchestrator.db import create_engine
from wf_orchestrator.dispatch import Dispatcher
from wf_orchestrator.errors import DatabaseUnavailable
from wf_orchestrator.hop import Hop
from wf_orchestrator.ids import IdPool
from wf_orchestrator.lease import Lease
from wf_orchestrator.migrations import migrate
from wf_orchestrator.outbox import Outbox
from wf_orchestrator.results import ResultsConsumer
from wf_orchestrator.settings import OrchestratorSettings
from wf_orchestrator.started import StartedTracker
from wf_orchestrator.sweeper import Sweeper
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.uow import Runner

log = logging.getLogger(__name__)


class Orchestrator:
    def __init__(self, settings: OrchestratorSettings, *, workflow: WorkflowConfig | None = None) -> None:
        self.settings = settings
        self.workflow = workflow or settings.workflow
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.nc: NATS | None = None
        self.engine: AsyncEngine | None = None

    async def __aenter__(self) -> Orchestrator:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        s, wf = self.settings, self.workflow
        database_url = s.database_url or wf.database.url
        nats_url = s.nats_url or wf.nats.url
        if not database_url or not nats_url:
            # The settings' own resolvers give the user-facing message.
            database_url, nats_url = s.resolved_database_url(), s.resolved_nats_url()
        self.nc = nc = await bus.connect(nats_url, "wf-orchestrator")
        js = nc.jetstream()
        await bus.ensure_topology(js, wf.bus, wf.pipeline.agent_stages)
        await bus.ensure_orchestrator_topology(js, wf.orchestrator.lease_ttl_seconds)
        self.lease = Lease(js, wf.orchestrator.lease_ttl_seconds)
        if not await self.lease.acquire(self._stop):
            return  # stopped while standing by
        self.engine = engine = create_engine(database_url, pool_size=s.db_pool_size)
        self.ctx = ctx = Context(
            wf.pipeline, default_test_command=wf.pipeline.default_test_command, ids=IdPool(engine)
        )
        ctx.budgets = wf.cost.budgets
        try:
            if s.migrate_on_start:
                await migrate(database_url)
            async with engine.connect() as conn:
                await ctx.load_agents(conn)
                await ctx.memory.load(conn)
        except (OSError, DBAPIError) as err:
            where = make_url(async_database_url(database_url)).render_as_string(hide_password=True)
            raise DatabaseUnavailable(
                f"could not use the database at {where}: {str(err).splitlines()[0]}. "
                "Is PostgreSQL running (`wf start` runs it), and is WF_DATABASE_URL right?"
            ) from err

        self.outbox = Outbox(engine, js)
        self.runner = runner = Runner(
            engine,
            self.outbox,
            on_dispatch=lambda: self.dispatcher.kick(),
            dispatch_within=(lambda uow: self.dispatcher.within(uow)) if s.dispatch_in_transaction else None,
        )
        self.control = Control(js, on_resume=lambda: self.dispatcher.kick())
        self.branches = branch_wiring.Branches(
            nc, js, runner, ctx, wf.git, kick=lambda: self.dispatcher.kick()
        )
        self.dispatcher = Dispatcher(
            runner,
            ctx,
            paused=lambda: self.control.paused,
            batch=s.dispatch_batch,
            held=self.branches.scopes.held,
            git=wf.git,
        )
        self.results = ResultsConsumer(
            nc,
            js,
            runner,
            ctx,
            concurrency=s.result_concurrency,
            apply_tries=wf.orchestrator.result_apply_tries,
            hop=Hop(
                engine,
                self.outbox,
                ctx,
                runner.dispatch_lock,
                held=self.branches.scopes.held,
                kick=lambda: self.dispatcher.kick(),
            )
            if s.one_statement_hop
            else None,
            paused=lambda: self.control.paused,
        )
        self.commands = CommandServer(
            nc, runner, ctx, self.control, concurrency=s.command_concurrency, branches=self.branches.commands
        )
        self.advisories = DeliveryAdvisories(nc, js, runner, ctx)
        self.started = StartedTracker(nc, js, engine)
        self.sweeper = Sweeper(
            runner,
            ctx,
            self.outbox,
            self.dispatcher.kick,
            js=js,
            interval=s.sweep_interval_seconds,
            timeout_margin=s.timeout_margin_seconds,
        )

        if s.timings_file:
            self.results.timings = []
        # Whatever a crash left unpublished goes out before anything new happens.
        await self.outbox.publish_leftovers()
        await self.control.start()
        await self.branches.start()
        for name, coro in (
            ("lease", self.lease.keep(self._stop)),
            ("advisories", self.advisories.run(self._stop)),
            ("outbox", self.outbox.run(self._stop)),
            ("dispatcher", self.dispatcher.run(self._stop)),
            ("results", self.results.run(self._stop)),
            ("started", self.started.run(self._stop)),
            ("sweeper", self.sweeper.run(self._stop)),
            ("pushes", self.branches.pushes.run(self._stop)),
        ):
            self._tasks.append(asyncio.create_task(coro, name=f"orchestrator-{name}"))
        await self.commands.start()
        self.dispatcher.kick()
        log.info("orchestrator ready (pipeline: %s)", " → ".join(st.name for st in wf.pipeline.stages))

    async def wait(self) -> None:
        """Until stop() is called or a component fails (re-raised so the process exits non-zero)."""
        stopping = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait({stopping, *self._tasks}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        for t in done:
            if t is not stopping and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]

    async def stop(self) -> None:
        self._stop.set()
        for closer in ("commands", "branches"):
            part = getattr(self, closer, None)
            if part is not None:
                with contextlib.suppress(Exception):
                    await part.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=30)
            for t in pending:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        results = getattr(self, "results", None)
        if self.settings.timings_file and results is not None and results.timings is not None:
            await asyncio.to_thread(Path(self.settings.timings_file).write_text, json.dumps(results.timings))
        control = getattr(self, "control", None)
        if control is not None:
            await control.stop()
        lease = getattr(self, "lease", None)
        if lease is not None:
            with contextlib.suppress(Exception):
                await lease.release()
        hop = results.hop if results is not None else None
        if hop is not None:
            with contextlib.suppress(Exception):
                await hop.close()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
            self.nc = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None
