"""The transactional outbox: store messages with the state change, publish them after the commit.

Every message carries a Nats-Msg-Id (jobs: the idempotency key, events: the event id), so publishing a
row twice (a crash between publish and delete, or the leftover sweep racing a slow publish) stores it
once within the stream's 15-minute duplicate window. Deletes are batched in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy import any_, bindparam, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from wf_common.db.tables import outbox
from wf_common.subjects import JOBS_PREFIX

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 10.0
_DELETE_BATCH = 1000


_INSERT = insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True)
_DELETE = delete(outbox).where(outbox.c.id == any_(bindparam("ids")))


@dataclass(frozen=True, slots=True)
class Outgoing:
    subject: str
    payload: bytes
    msg_id: str


@dataclass(frozen=True, slots=True)
class Stored:
    id: int
    message: Outgoing


def _is_job(s: Stored) -> bool:
    return s.message.subject.startswith(JOBS_PREFIX + ".")


def jobs_first(stored: list[Stored]) -> list[Stored]:
    """The Jobs before the events, each kind in its order: a runner gets its next job one publication
    sooner, and every task's events keep their order (they are on another stream than the jobs)."""
    jobs = [s for s in stored if _is_job(s)]
    if not jobs or len(jobs) == len(stored):
        return stored
    return jobs + [s for s in stored if not _is_job(s)]


class Outbox:
    def __init__(self, engine: AsyncEngine, js: JetStreamContext) -> None:
        self._engine = engine
        self._js = js
        self._published: list[int] = []
        self._wake = asyncio.Event()
        self._settling: set[asyncio.Task[None]] = set()  # acks collected in the background

    async def store(self, conn: AsyncConnection, messages: list[Outgoing]) -> list[Stored]:
        if not messages:
            return []
        rows = [{"subject": m.subject, "payload": m.payload, "msg_id": m.msg_id} for m in messages]
        result = await conn.execute(_INSERT, rows)
        return [Stored(i, m) for i, m in zip(result.scalars().all(), messages, strict=True)]

    async def publish(self, stored: list[Stored], *, events_behind: bool = False) -> None:
        """Publish in order and wait for JetStream's acks; raises if any waited for was not stored.

        `events_behind`: the Jobs go out alone and their acks are waited for; only then are the events
        published, their acks collected in the background (`settle`). JetStream acks a publication once
        it has read and stored what came with it, so a Job sent ahead of five events waited for their
        storage too: alone, its ack (and its delivery to a runner) comes a round trip after the send.
        Safe for a caller that acks a Result next: the events' rows stay in the outbox until their acks
        came, and a row whose publication failed is published again by the sweeper (or at the next
        start), deduplicated by its Nats-Msg-Id."""
        if not stored:
            return
        if events_behind:
            jobs = [s for s in stored if _is_job(s)]
            if jobs and len(jobs) < len(stored):
                await self._acked(jobs, await self._send(jobs), raise_=True)
                later = [s for s in stored if not _is_job(s)]
                task = asyncio.create_task(self._acked(later, await self._send(later)))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)
                return
        await self._acked(stored, await self._send(stored), raise_=True)

    async def _send(self, stored: list[Stored]) -> list[Any]:
        """Publish `stored` in order; the futures of their acks."""
        return [
            await self._js.publish_async(m.subject, m.payload, headers={"Nats-Msg-Id": m.msg_id})
            for m in (s.message for s in stored)
        ]

    async def _acked(self, stored: list[Stored], futures: list[Any], *, raise_: bool = False) -> None:
        """Wait for the acks of `futures`; their rows are deleted later. Raises if `raise_`, else logs
        (the rows stay in the outbox for the sweeper)."""
        if not futures:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*futures), PUBLISH_TIMEOUT)
        except BaseException as err:
            for f in futures:
                f.cancel()
            if raise_ or not isinstance(err, Exception):
                raise
            log.warning(
                "publishing %d event(s) failed (%s); the sweeper publishes them again",
                len(stored),
                err or type(err).__name__,
            )
            return
        self._published.extend(s.id for s in stored)
        if len(self._published) >= _DELETE_BATCH:
            self._wake.set()

    async def settle(self) -> None:
        """Until the acks collected in the background are in (before a last flush)."""
        while self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)

    async def publish_leftovers(self, *, older_than_seconds: float = 0.0) -> int:
        """Publish rows a crash (or a failed publish) left behind, oldest first. Returns how many."""
        total = 0
        after = 0
        while True:
            async with self._engine.connect() as conn:
                query = select(outbox).where(outbox.c.id > after).order_by(outbox.c.id).limit(500)
                if older_than_seconds:
                    query = query.where(
                        outbox.c.created_at
                        < text("now() - make_interval(secs => :age)").bindparams(age=older_than_seconds)
                    )
                rows = (await conn.execute(query)).mappings().all()
            if not rows:
                break
            await self.publish(
                [Stored(r["id"], Outgoing(r["subject"], r["payload"], r["msg_id"])) for r in rows]
            )
            total += len(rows)
            after = rows[-1]["id"]
        if total:
            log.info("published %d message(s) left in the outbox", total)
            await self.flush()
        return total

    async def flush(self) -> None:
        """Delete the rows published so far."""
        while self._published:
            ids, self._published = self._published[:_DELETE_BATCH], self._published[_DELETE_BATCH:]
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(_DELETE, {"ids": ids})
            except Exception:
                # They are published: keeping the ids for the next round is enough (a restart in
                # between republishes them, which the Nats-Msg-Id dedupes).
                self._published[:0] = ids
                raise

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Delete published rows in batches until `stop`; a last flush on the way out."""
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                waking = asyncio.create_task(self._wake.wait())
                await asyncio.wait({waking, stopping}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
                waking.cancel()
                self._wake.clear()
                try:
                    await self.flush()
                except Exception:
                    log.exception("could not delete published outbox rows; will try again")
        finally:
            stopping.cancel()
            with contextlib.suppress(Exception):
                await self.settle()
                await self.flush()
