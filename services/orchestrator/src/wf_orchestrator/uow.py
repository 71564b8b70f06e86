"""Unit of work: one transaction writes a state change together with the messages it causes.

    value = await runner.run(work)     # work(uow) reads/writes through uow.conn, uow.emit(event) ...

The messages go into the `outbox` table in the same transaction; once it committed they are published
(and the outbox rows deleted), and only then does `run` return, so a caller that acks a NATS message
afterwards never acks work whose messages could be lost. A transaction that loses a deadlock is retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from wf_common.events import _Event
from wf_common.jobs import Job
from wf_common.subjects import job_subject

from wf_orchestrator.outbox import Outbox, Outgoing, Stored, jobs_first

log = logging.getLogger(__name__)
T = TypeVar("T")

# deadlock_detected, serialization_failure: the transaction did nothing; running it again is safe.
_RETRY_SQLSTATES = {"40P01", "40001"}
_MAX_TRIES = 5


@dataclass
class UnitOfWork:
    conn: AsyncConnection
    messages: list[Outgoing] = field(default_factory=list)
    # Messages the work wrote to the outbox itself (batched into one of its own statements).
    stored: list[Stored] = field(default_factory=list)
    # Set when the work may have made a task dispatchable (queued) or freed a slot.
    wants_dispatch: bool = False
    # Set when the work queued a task: only then is a dispatch pass run inside this transaction (the
    # job leaves with the commit). A freed slot alone commits at once and kicks the dispatcher after.
    made_ready: bool = False
    # Updates of the orchestrator's memory (wf_orchestrator.hop.Memory), made once the work committed.
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # Work for units of work of their own, run once this one committed and published (each its own
    # transaction, so its locks are not held across this one's commit). A crash before they ran
    # leaves what the sweeper's safety nets find (e.g. an idea whose tasks are all done).
    follow_ups: list[Callable[[UnitOfWork], Awaitable[object]]] = field(default_factory=list)

    def emit(self, event: _Event) -> None:
        self.messages.append(Outgoing(event.subject(), event.model_dump_json().encode(), event.id))

    def send_job(self, job: Job) -> None:
        # Nats-Msg-Id = the idempotency key: a job published twice (crash between publish and delete)
        # is stored once by JetStream.
        self.messages.append(
            Outgoing(job_subject(job.stage), job.model_dump_json().encode(), job.idempotency_key)
        )


class OwnHandler(Protocol):
    """A command's own handler, run in a unit of work of its own; `also` adds to that transaction
    (an event that must commit with the change, or not at all)."""

    def __call__(self, also: Callable[[UnitOfWork], None] | None = None) -> Awaitable[dict[str, Any]]: ...


class Runner:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Outbox,
        on_dispatch: Callable[[], None],
        dispatch_within: Callable[[UnitOfWork], Awaitable[bool]] | None = None,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self._on_dispatch = on_dispatch
        # Dispatch in the same transaction when the work made a task ready (see Dispatcher.within).
        self._dispatch_within = dispatch_within
        self.active = 0  # units of work running now
        # Held by whatever may start jobs (a dispatch pass, a hop) until its commit: slots are counted
        # by one of them at a time. In-process is enough: only the lease holder dispatches.
        self.dispatch_lock = asyncio.Lock()

    async def run(self, work: Callable[[UnitOfWork], Awaitable[T]], *, must_publish: bool = True) -> T:
        """Run `work` in a transaction and publish its messages.

        If publishing fails after the commit, the rows stay in the outbox and the sweeper publishes
        them later; `must_publish` says whether the caller needs to know (a result is then nak'ed and
        acked on its harmless redelivery) or not (a command's reply reports what was committed).
        """
        for attempt in range(1, _MAX_TRIES + 1):
            self.active += 1
            holding = False
            try:
                async with self.engine.begin() as conn:
                    uow = UnitOfWork(conn)
                    value = await work(uow)
                    # Only when it is alone: with others in flight, the dispatcher's passes batch better.
                    # Never waits for the lock (this transaction holds row locks): declines instead.
                    if (
                        uow.made_ready
                        and self.active == 1
                        and self._dispatch_within
                        and not self.dispatch_lock.locked()
                    ):
                        await self.dispatch_lock.acquire()  # free: returns at once
                        holding = True
                        uow.wants_dispatch = not await self._dispatch_within(uow)
                    stored = uow.stored + await self.outbox.store(conn, uow.messages)
                break
            except DBAPIError as err:
                code = getattr(err.orig, "sqlstate", None) or getattr(err.orig, "pgcode", None)
                if code not in _RETRY_SQLSTATES or attempt == _MAX_TRIES:
                    raise
                log.info("transaction lost a %s race (try %d); running it again", code, attempt)
                await asyncio.sleep(0.01 * attempt)
            finally:
                self.active -= 1
                if holding:
                    self.dispatch_lock.release()
        for hook in uow.after_commit:
            hook()
        if uow.wants_dispatch:
            self._on_dispatch()
        try:
            # The next Job first. A caller that must know (a Result's apply) waits for the Jobs' acks
            # only: the events' rows stay in the outbox until theirs come (wf_orchestrator.outbox).
            await self.outbox.publish(jobs_first(stored), events_behind=must_publish)
        except Exception as err:
            if must_publish:
                raise
            log.warning(
                "committed, but publishing %d message(s) failed (%s); the sweeper retries",
                len(stored),
                err or type(err).__name__,
            )
        for follow_up in uow.follow_ups:
            try:
                await self.run(follow_up, must_publish=False)
            except Exception as err:  # noqa: BLE001 - committed work stands; the sweeper retries this
                log.warning("a follow-up of a committed change failed (%s); the sweeper retries it", err)
        return value
