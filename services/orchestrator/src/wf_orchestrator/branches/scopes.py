"""Pauses of one project or one task (the global flag stays in `wf_orchestrator.control`).

The keys live in `wf_control` (`wf_common.pauses`); the orchestrator watches them, so a
`nats kv put wf_control paused.project.listsnap true` pauses like `wf pause --project listsnap`. The
dispatcher skips the ids `held()` returns; the runners freeze the running jobs in scope themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine
from wf_common import bus
from wf_common.commands import Pause, Resume
from wf_common.db.tables import projects, tasks
from wf_common.errors import CommandError
from wf_common.events import ControlChanged
from wf_common.pauses import PauseState, pause_key, read_state, scope_of
from wf_common.subjects import CONTROL_BUCKET

log = logging.getLogger(__name__)


class PauseScopes:
    def __init__(self, js: JetStreamContext, engine: AsyncEngine, on_resume: Callable[[], None]) -> None:
        self._js = js
        self._engine = engine
        self._on_resume = on_resume
        self._kv: KeyValue | None = None
        self.state = PauseState()
        self._project_ids: frozenset[int] = frozenset()
        self._task_ids: frozenset[int] = frozenset()
        self._watch_task: asyncio.Task[None] | None = None

    def held(self) -> tuple[frozenset[int], frozenset[int]]:
        """Ids of the paused projects and tasks (the dispatcher leaves their queued tasks waiting)."""
        return self._project_ids, self._task_ids

    async def start(self) -> None:
        self._kv = await self._js.key_value(CONTROL_BUCKET)
        self.state = await read_state(self._kv)
        await self._resolve()
        self._watch_task = asyncio.create_task(self._watch(self._kv), name="pause-scopes-watch")

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task

    async def set(self, cmd: Pause | Resume) -> dict[str, object]:
        """A scoped pause or resume command; the reply names what is paused now."""
        if self._kv is None:
            raise CommandError("unavailable", "the orchestrator is starting; try again")
        await self._check_exists(cmd.project, cmd.task_key)
        paused = isinstance(cmd, Pause)
        key = pause_key(cmd.project, cmd.task_key)
        changed = self.state.apply(key, b"true" if paused else b"false")
        await self._kv.put(key, b"true" if paused else b"false")
        await self._resolve()
        if changed:
            await self._announce(paused, cmd.project, cmd.task_key, cmd.actor)
            if not paused:
                self._on_resume()
        return self.state.as_dict()

    async def _check_exists(self, project: str | None, task_key: str | None) -> None:
        async with self._engine.connect() as conn:
            pid = await conn.scalar(select(projects.c.id).where(projects.c.slug == project))
            if pid is None:
                raise CommandError("not_found", f"there is no project {project!r}")
            if task_key is not None and (
                await conn.scalar(
                    select(tasks.c.id).where(tasks.c.project_id == pid, tasks.c.task_key == task_key)
                )
                is None
            ):
                raise CommandError("not_found", f"there is no task {task_key} in project {project!r}")

    async def _resolve(self) -> None:
        """Slugs and keys to ids, for the dispatcher's query."""
        state = self.state
        async with self._engine.connect() as conn:
            pids = (
                (await conn.execute(select(projects.c.id).where(projects.c.slug.in_(state.projects))))
                .scalars()
                .all()
                if state.projects
                else []
            )
            tids = (
                (
                    await conn.execute(
                        select(tasks.c.id)
                        .join(projects, projects.c.id == tasks.c.project_id)
                        .where(tuple_(projects.c.slug, tasks.c.task_key).in_(sorted(state.tasks)))
                    )
                )
                .scalars()
                .all()
                if state.tasks
                else []
            )
        self._project_ids, self._task_ids = frozenset(pids), frozenset(tids)

    async def _announce(self, paused: bool, project: str | None, task_key: str | None, actor: str) -> None:
        event = ControlChanged(
            paused=paused, scope=scope_of(project, task_key), project=project, task_key=task_key, actor=actor
        )
        try:
            await bus.publish(self._js, event.subject(), event, msg_id=event.id)
        except Exception as err:  # noqa: BLE001 - the flag itself is what matters; the event is information
            log.warning("could not publish %s: %s", event.type, err)

    async def _watch(self, kv: KeyValue) -> None:
        while True:
            watcher = None
            try:
                watcher = await kv.watchall()
                async for entry in watcher:
                    if entry is None or entry.key == "paused":  # the global flag is Control's
                        continue
                    before = (set(self.state.projects), set(self.state.tasks))
                    if self.state.apply(entry.key, entry.value, entry.operation):
                        await self._resolve()
                        if len(self.state.projects) < len(before[0]) or len(self.state.tasks) < len(
                            before[1]
                        ):
                            self._on_resume()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - any failure of the watch: watch again
                log.warning("watching %s failed (%s); watching again", CONTROL_BUCKET, err)
                await asyncio.sleep(1.0)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()  # type: ignore[no-untyped-call]
