"""The orchestrator lease: exactly one orchestrator is active; any other is a hot standby.

The lease is key `active` in the KV bucket `wf_orchestrator`, whose entries expire after
`orchestrator.lease_ttl_seconds`. The active instance created the key and renews it every third of
the TTL with a compare-and-set on its revision; a standby tries to create it every fraction of the TTL
and succeeds once the key is gone (deleted by an active that stopped cleanly, or expired because it
died). A renewal that finds another revision, or that cannot reach NATS before the lease would have
expired, means the lease is lost: the active instance stops at once (`LeaseLost`), so there are never
two writers for longer than a renewal interval — and every write is guarded in SQL anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue
from wf_common import subjects

from wf_orchestrator.errors import OrchestratorError

log = logging.getLogger(__name__)


class LeaseLost(OrchestratorError):
    """Another orchestrator holds the lease now (or we could not renew it in time)."""


class Lease:
    def __init__(self, js: JetStreamContext, ttl: float, *, holder: str | None = None) -> None:
        self._js = js
        self.ttl = ttl
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._kv: KeyValue | None = None
        self.revision: int | None = None
        self._renewed = 0.0

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(subjects.LEASE_BUCKET)
            info = await self._js.stream_info(f"KV_{subjects.LEASE_BUCKET}")
            if info.config.max_age != self.ttl:  # the TTL changed in config.yaml
                info.config.max_age = self.ttl
                await self._js.update_stream(info.config)
        return self._kv

    def _value(self) -> bytes:
        return json.dumps({"holder": self.holder, "pid": os.getpid(), "since": time.time()}).encode()

    async def current_holder(self) -> str | None:
        kv = await self._bucket()
        try:
            entry = await kv.get(subjects.LEASE_KEY)
        except (KeyNotFoundError, NotFoundError):
            return None
        try:
            return str(json.loads(entry.value or b"{}").get("holder")) or None
        except ValueError:
            return None

    async def try_acquire(self) -> bool:
        kv = await self._bucket()
        try:
            self.revision = await kv.create(subjects.LEASE_KEY, self._value())
        except KeyWrongLastSequenceError:
            return False
        self._renewed = time.monotonic()
        log.info("lease acquired: this orchestrator (%s) is the active one", self.holder)
        return True

    async def acquire(self, stop: asyncio.Event | None = None) -> bool:
        """Wait until this instance holds the lease (True), or until `stop` is set (False)."""
        announced = False
        while stop is None or not stop.is_set():
            if await self.try_acquire():
                return True
            if not announced:
                log.info(
                    "standby: orchestrator %s holds the lease; taking over within %gs if it stops",
                    await self.current_holder(),
                    self.ttl,
                )
                announced = True
            if stop is None:
                await asyncio.sleep(self.ttl / 6)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.ttl / 6)
        return False

    async def renew(self) -> None:
        kv = await self._bucket()
        try:
            self.revision = await kv.update(subjects.LEASE_KEY, self._value(), last=self.revision)
        except KeyWrongLastSequenceError:
            await self._recover(kv)
        self._renewed = time.monotonic()

    async def _recover(self, kv: KeyValue) -> None:
        """The key is not at the revision we wrote last. Still ours (a renewal that timed out on our
        side reached the server): adopt its revision. Gone (it expired while this instance was slow
        to start or busy, and no standby took it): create it again. Another holder: the lease is lost."""
        try:
            entry = await kv.get(subjects.LEASE_KEY)
        except (KeyNotFoundError, NotFoundError):
            entry = None
        if entry is None:
            try:
                self.revision = await kv.create(subjects.LEASE_KEY, self._value())
            except KeyWrongLastSequenceError:
                raise self._lost() from None
            log.warning(
                "the orchestrator lease expired before it was renewed; nobody took it, so it is held again"
            )
            return
        try:
            holder = json.loads(entry.value or b"{}").get("holder")
        except ValueError:
            holder = None
        if holder != self.holder:
            raise self._lost()
        try:
            self.revision = await kv.update(subjects.LEASE_KEY, self._value(), last=entry.revision)
        except KeyWrongLastSequenceError:
            raise self._lost() from None

    def _lost(self) -> LeaseLost:
        return LeaseLost(
            "another orchestrator took the lease (this one was unresponsive for longer than "
            f"orchestrator.lease_ttl_seconds = {self.ttl:g}s); stopping"
        )

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew until `stop`; raises LeaseLost when the lease is gone."""
        every = self.ttl / 3
        wait = 0.0  # renew at once: starting up (migrations, loading state) may have taken most of the TTL
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            wait = every
            if stop.is_set():
                return
            try:
                await asyncio.wait_for(self.renew(), every)
            except (NatsError, TimeoutError, OSError) as err:
                if time.monotonic() - self._renewed >= self.ttl - every / 2:
                    why = f"could not renew the orchestrator lease in time ({err}); stopping"
                    raise LeaseLost(why) from err
                log.warning("renewing the orchestrator lease failed (%s); trying again", err)

    async def release(self) -> None:
        """Hand over at once (a clean stop): a standby need not wait for the TTL."""
        if self.revision is None:
            return
        kv = await self._bucket()
        with contextlib.suppress(NatsError, KeyWrongLastSequenceError, TimeoutError):
            await kv.delete(subjects.LEASE_KEY, last=self.revision)
        self.revision = None
