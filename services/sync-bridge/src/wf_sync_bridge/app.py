"""The sync bridge process: connect, migrate its schema, start each target's connector (checking the
stage mapping), then run the WF_EVENTS intake, each target's worker and poller, and the control
subjects wf.sync.<op> the board API uses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from wf_common import bus, subjects
from wf_common.config import WorkflowConfig
from wf_common.errors import ConfigError

from wf_sync_bridge import control
from wf_sync_bridge.adapters import make_adapter
from wf_sync_bridge.adapters.base import StageMappingError, TransientError
from wf_sync_bridge.intake import CONSUMER, Intake, ensure_consumer
from wf_sync_bridge.local import LocalTasks
from wf_sync_bridge.migrations import migrate
from wf_sync_bridge.settings import SyncBridgeSettings
from wf_sync_bridge.syncer import TargetSync

log = logging.getLogger(__name__)

START_RETRY_SECONDS = 2.0


class SyncBridge:
    def __init__(self, settings: SyncBridgeSettings, workflow: WorkflowConfig | None = None) -> None:
        self.settings = settings
        self.workflow = workflow or settings.workflow
        self.nc: NATS | None = None
        self.db: AsyncEngine | None = None
        self.targets: list[TargetSync] = []
        self.stop_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Any] = []
        self.webhooks: Any = None
        self._stopped = False

    async def __aenter__(self) -> SyncBridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start everything; one part failing (a stage missing in a tracker) closes what was opened."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        if not self.workflow.task_backend.sync_to:
            raise ConfigError("task_backend.sync_to is empty: there is nothing for the sync bridge to do")
        url = self.settings.resolved_database_url()
        if self.settings.migrate_on_start:
            await migrate(url)
        self.db = create_async_engine(url, pool_size=5)
        self.nc = await bus.connect(self.settings.resolved_nats_url(), "sync-bridge")
        js = self.nc.jetstream()
        await bus.ensure_topology(
            js, self.workflow.bus, self.workflow.pipeline.agent_stages, update_existing=False
        )
        await ensure_consumer(js)
        local = LocalTasks(self.nc)
        for target in self.workflow.task_backend.sync_to:
            sync = TargetSync(target, make_adapter(target), self.db, local, self.workflow)
            self.targets.append(sync)
            await self._start_adapter(sync)
        intake = Intake(self.db, self.targets)
        self._spawn(
            bus.consume(
                self.nc,
                js,
                stream=subjects.EVENTS_STREAM,
                durable=CONSUMER,
                handler=intake.handle,
                stop=self.stop_event,
            )
        )
        # Writes wait until the mirror of local tasks has caught up with WF_EVENTS: a stale mirror would
        # take a newer local edit for unchanged and let the tracker's older value overwrite it.
        await self._caught_up(js)
        for t in self.targets:
            self._spawn(t.run_worker(self.stop_event))
            self._spawn(t.run_poller(self.stop_event))
        self._subs.append(
            await self.nc.subscribe(f"{control.PREFIX}.*", queue="sync-bridge", cb=self._on_control)
        )
        if self.settings.sync_webhook_port:
            from wf_sync_bridge.webhooks import WebhookServer

            self.webhooks = WebhookServer(
                self, self.settings.sync_webhook_host, self.settings.sync_webhook_port
            )
            await self.webhooks.start()
        log.info("sync bridge running for %s", ", ".join(t.name for t in self.targets))

    async def _start_adapter(self, sync: TargetSync) -> None:
        """Retry an unreachable tracker; a stage missing there is a configuration error."""
        delay = START_RETRY_SECONDS
        while True:
            try:
                await sync.adapter.start(sync.remote_stages)
            except StageMappingError as err:
                raise ConfigError(f"task_backend.sync_to[{sync.name}]: {err}") from None
            except TransientError as err:
                log.warning("%s: not reachable (%s); retrying in %.0fs", sync.name, err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)
            else:
                return

    async def _caught_up(self, js: Any, within: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            info = await js.consumer_info(subjects.EVENTS_STREAM, CONSUMER)
            if not info.num_pending and not info.num_ack_pending:
                return
            await asyncio.sleep(0.05)
        log.warning("the event backlog is still being read after %.0fs; syncing anyway", within)

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def _on_control(self, msg: Msg) -> None:
        reply = await control.handle(self, msg.subject.rsplit(".", 1)[-1], msg.data)
        if msg.reply:
            with contextlib.suppress(Exception):
                await msg.respond(json.dumps(reply, default=str).encode())

    def target(self, name: str) -> TargetSync | None:
        return next((t for t in self.targets if t.name == name), None)

    async def wait(self) -> None:
        """Until a component fails (raises) or the bridge is stopped."""
        while not self.stop_event.is_set():
            for t in self._tasks:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.stop_event.set()
        for t in self.targets:
            t.wake.set()
            t.poll_now.set()
        if self.webhooks is not None:
            await self.webhooks.stop()
        for s in self._subs:
            with contextlib.suppress(Exception):
                await s.unsubscribe()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for t in self.targets:
            await t.adapter.close()
        if self.nc is not None:
            await self.nc.close()
        if self.db is not None:
            await self.db.dispose()
