"""Following the runners and the tasks from their events:

- `execution.paused` / `execution.resumed` (a runner froze or continued a job): the execution's
  status becomes `paused` / `running` again; a resume moves `started_at` on by the time paused, so
  the stage-timeout sweep (which skips paused executions) does not count it;
- `task.state_changed` to done: the task's worktree is removed if its branch is merged into the
  main branch and nothing in it is uncommitted; otherwise it is kept and the reason is logged.

Both listen on core NATS: a missed event leaves an execution marked running (its result still
applies) or a worktree in place (nothing is lost), never the reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from wf_common.config import GitConfig
from wf_common.db.tables import executions, projects
from wf_common.events import ExecutionPaused, ExecutionResumed, TaskStateChanged
from wf_common.gitops import tasks as gtasks
from wf_common.gitops.layout import worktree_path
from wf_common.gitops.safe import GitError
from wf_common.states import ExecutionStatus, TaskState
from wf_common.subjects import EVENTS_PREFIX

log = logging.getLogger(__name__)

_ACTIVE = [ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value]
_DONE = f'"{TaskState.DONE.value}"'.encode()


class BranchTracker:
    def __init__(self, nc: NATS, engine: AsyncEngine, git: GitConfig) -> None:
        self._nc = nc
        self._engine = engine
        self._git = git
        self._subs: list[Subscription] = []
        self._inflight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for kind, cb in (
            ("execution.paused", self._on_paused),
            ("execution.resumed", self._on_resumed),
            ("task.state_changed", self._on_state),
        ):
            self._subs.append(await self._nc.subscribe(f"{EVENTS_PREFIX}.*.*.{kind}", cb=cb))

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _on_paused(self, msg: Msg) -> None:
        try:
            ev = ExecutionPaused.model_validate_json(msg.data)
        except ValidationError:
            return
        self._spawn(self._write(ev.execution_id, paused=True, seconds=0.0))

    async def _on_resumed(self, msg: Msg) -> None:
        try:
            ev = ExecutionResumed.model_validate_json(msg.data)
        except ValidationError:
            return
        self._spawn(self._write(ev.execution_id, paused=False, seconds=ev.paused_seconds))

    async def _write(self, execution_id: int, *, paused: bool, seconds: float) -> None:
        if paused:
            stmt = (
                update(executions)
                .where(executions.c.id == execution_id, executions.c.status.in_(_ACTIVE))
                .values(status=ExecutionStatus.PAUSED.value)
            )
        else:
            stmt = (
                update(executions)
                .where(executions.c.id == execution_id, executions.c.status == ExecutionStatus.PAUSED.value)
                .values(
                    status=ExecutionStatus.RUNNING.value,
                    started_at=executions.c.started_at + timedelta(seconds=seconds),
                )
            )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(stmt)
        except (OSError, DBAPIError) as err:
            log.warning(
                "could not mark execution %s %s: %s", execution_id, "paused" if paused else "resumed", err
            )

    async def _on_state(self, msg: Msg) -> None:
        # Most of them are the orchestrator's own hops (queued, running): not parsed at all. A change
        # to done has the JSON string "done" in it, however its encoder spaced it.
        if _DONE not in msg.data:
            return
        try:
            ev = TaskStateChanged.model_validate_json(msg.data)
        except ValidationError:
            return
        if ev.to_state == TaskState.DONE.value and ev.project and ev.task_key and ev.task.parent is not None:
            self._spawn(self._remove(ev.project, ev.task_key))

    async def _remove(self, slug: str, key: str) -> None:
        try:
            async with self._engine.connect() as conn:
                workspace = await conn.scalar(select(projects.c.workspace).where(projects.c.slug == slug))
            if workspace is None:
                return
            path = worktree_path(workspace, slug, key, self._git.worktrees_dir)
            kept = await asyncio.to_thread(
                gtasks.remove_worktree, workspace, key, path, main=self._git.main_branch
            )
        except (OSError, DBAPIError, GitError) as err:
            log.warning("%s/%s: could not remove the finished task's worktree: %s", slug, key, err)
            return
        if kept:
            log.info("%s/%s is done; its worktree is kept: %s", slug, key, kept)
        else:
            log.info("%s/%s is done and merged; its worktree is removed (the branch stays)", slug, key)
