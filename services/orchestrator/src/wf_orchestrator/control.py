"""The global pause flag: key `paused` of the `wf_control` KV bucket ("true"/"false").

The orchestrator watches the key, so `nats kv put wf_control paused true` pauses exactly like
`wf pause`. While paused nothing is dispatched, and the runners hold running jobs before their next
model turn (wf_agent_runner.turns); results that arrive are applied. Project and task pauses:
wf_orchestrator.branches.scopes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from wf_common import bus
from wf_common.events import ControlChanged
from wf_common.subjects import CONTROL_BUCKET, PAUSED_KEY

log = logging.getLogger(__name__)


def parse_paused(value: bytes | None) -> bool:
    return (value or b"").strip().lower() in (b"true", b"1", b"yes", b"on")


class Control:
    def __init__(self, js: JetStreamContext, on_resume: Callable[[], None]) -> None:
        self._js = js
        self._on_resume = on_resume
        self._kv: KeyValue | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self.paused = False

    async def start(self) -> None:
        self._kv = await self._js.key_value(CONTROL_BUCKET)
        try:
            entry = await self._kv.get(PAUSED_KEY)
            self.paused = parse_paused(entry.value)
        except KeyNotFoundError:
            self.paused = False
        if self.paused:
            log.warning("dispatch is paused (wf_control %s = true); `wf resume` to continue", PAUSED_KEY)
        self._watch_task = asyncio.create_task(self._watch(), name="control-watch")

    async def stop(self) -> None:
        if self._watch_task:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch_task

    async def set(self, paused: bool, actor: str) -> None:
        """Write the flag (the command path); the event names the actor."""
        if not (self._kv is not None):
            raise RuntimeError("invariant broken: self._kv is not None")
        # Applied before the write: the watcher then sees no change and leaves the event to us (it
        # would otherwise announce our own write as someone else's).
        was = self.paused
        self._apply(paused)
        try:
            await self._kv.put(PAUSED_KEY, b"true" if paused else b"false")
        except BaseException:
            self._apply(was)
            raise
        if was != paused:
            await self._announce(paused, actor)

    def _apply(self, paused: bool) -> None:
        was, self.paused = self.paused, paused
        if was and not paused:
            log.info("dispatch resumed")
            self._on_resume()
        elif paused and not was:
            log.info("dispatch paused; runners hold running jobs before their next model turn")

    async def _announce(self, paused: bool, actor: str) -> None:
        event = ControlChanged(paused=paused, actor=actor)
        try:
            await bus.publish(self._js, event.subject(), event, msg_id=event.id)
        except Exception as err:  # the flag itself is what matters; the event is information  # noqa: BLE001 - a boundary: any failure is reported or logged, never crashes the loop
            log.warning("could not publish %s: %s", event.type, err)

    async def _watch(self) -> None:
        if not (self._kv is not None):
            raise RuntimeError("invariant broken: self._kv is not None")
        while True:
            watcher = None
            try:
                watcher = await self._kv.watch(PAUSED_KEY)
                async for entry in watcher:
                    if entry is None:
                        continue  # end of the initial values
                    value = False if entry.operation in (KV_DEL, KV_PURGE) else parse_paused(entry.value)
                    if value != self.paused:
                        # Someone else wrote it (nats kv put): same effect as the command.
                        self._apply(value)
                        await self._announce(value, "system")
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - a boundary: any failure is reported or logged, never crashes the loop
                log.warning("watching %s/%s failed (%s); watching again", CONTROL_BUCKET, PAUSED_KEY, err)
                await asyncio.sleep(1.0)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()  # type: ignore[no-untyped-call]
