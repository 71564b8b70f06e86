"""Pushes after a deploy merge, queued in `pending_pushes` and retried with backoff until the remote
answers (the seed's offline mode: work goes on without the network, and nothing is forgotten).

A row is made for every push; the loop pushes due rows off the event loop, deletes a row once its
push succeeded, and otherwise counts the attempt and waits `git.push_retry_delays[attempt]` (the
last delay repeats). `wf status` (GET /api/control) lists what is pending and the last error.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from wf_common.config import GitConfig
from wf_common.db.tables import pending_pushes, projects
from wf_common.gitops import tasks as gtasks
from wf_common.gitops.safe import GitError
from wf_common.jobs import utcnow

log = logging.getLogger(__name__)


class PushQueue:
    def __init__(self, engine: AsyncEngine, git: GitConfig, *, idle_seconds: float = 5.0) -> None:
        self._engine = engine
        self._git = git
        self._idle = idle_seconds
        self._wake = asyncio.Event()
        self.pushed = 0

    def kick(self) -> None:
        self._wake.set()

    async def enqueue(self, project_id: int, remote: str, branch: str) -> str:
        """Queue a push (one row per target: a newer merge is covered by the pending push); "queued"."""
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(pending_pushes)
                .values(project_id=project_id, remote=remote, branch=branch, next_attempt_at=utcnow())
                .on_conflict_do_update(
                    constraint="uq_pending_pushes_target", set_={"next_attempt_at": utcnow()}
                )
            )
        self.kick()
        return "queued"

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.push_due()
            except Exception:  # e.g. the database is away: the rows wait for the next round
                log.exception("pushing queued branches failed; trying again shortly")
            waiting = asyncio.ensure_future(self._wake.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiting, stopping}, timeout=self._idle, return_when=asyncio.FIRST_COMPLETED)
            for f in (waiting, stopping):
                f.cancel()
            self._wake.clear()

    async def push_due(self) -> int:
        now = utcnow()
        async with self._engine.connect() as conn:
            due = (
                (
                    await conn.execute(
                        select(pending_pushes, projects.c.workspace, projects.c.slug)
                        .join(projects, projects.c.id == pending_pushes.c.project_id)
                        .where(pending_pushes.c.next_attempt_at <= now)
                        .order_by(pending_pushes.c.next_attempt_at)
                        .limit(20)
                    )
                )
                .mappings()
                .all()
            )
        done = 0
        for row in due:
            if await self._push(dict(row)):
                done += 1
        return done

    async def _push(self, row: dict[str, Any]) -> bool:
        try:
            await asyncio.to_thread(gtasks.push, row["workspace"], row["remote"], row["branch"])
        except GitError as err:
            attempts = row["attempts"] + 1
            delays = self._git.push_retry_delays
            wait = delays[min(attempts, len(delays)) - 1]
            log.warning(
                "%s: push of %s to %s failed (attempt %d; next in %gs): %s",
                row["slug"], row["branch"], row["remote"], attempts, wait, err,
            )  # fmt: skip
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(pending_pushes)
                    .where(pending_pushes.c.id == row["id"])
                    .values(
                        attempts=attempts,
                        next_attempt_at=utcnow() + timedelta(seconds=wait),
                        last_error=str(err)[-1000:],
                    )
                )
            return False
        async with self._engine.begin() as conn:
            # Only the row as it was: a merge queued meanwhile moved next_attempt_at and pushes again.
            await conn.execute(
                delete(pending_pushes).where(
                    pending_pushes.c.id == row["id"],
                    pending_pushes.c.next_attempt_at == row["next_attempt_at"],
                )
            )
        self.pushed += 1
        log.info("%s: pushed %s to %s", row["slug"], row["branch"], row["remote"])
        return True
