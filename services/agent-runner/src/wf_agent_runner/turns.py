"""Between two model turns: a pause holds the agent there (and freezes its sandbox at once), and
feedback a human typed while it works joins the conversation.

`PauseWatch` is the runner's view of the pause keys in `wf_control` (`wf_common.pauses`), kept by one
KV watch. `TurnGate` is one job's: the agent calls `before_turn()` before every model call. The job's
JetStream delivery keeps getting `in_progress()` from the runner while it waits, so a paused job is
not redelivered; the time spent paused is added to the stage's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import ValidationError
from wf_common import bus
from wf_common.events import ExecutionPaused, ExecutionResumed, FeedbackAdded
from wf_common.jobs import Job
from wf_common.pauses import PauseState, Scope, read_state
from wf_common.subjects import CONTROL_BUCKET, event_subject

from wf_agent_runner.llm import Message

log = logging.getLogger(__name__)

FEEDBACK_INTRO = "A human added feedback while you were working; take it into account from now on:"


class Freezable(Protocol):
    """The part of the sandbox (`wf_agent_runner.sandbox.Sandbox`) a pause uses."""

    async def freeze(self) -> None: ...

    async def thaw(self) -> None: ...


class PauseWatch:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self.state = PauseState()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        kv = await self._js.key_value(CONTROL_BUCKET)
        self.state = await read_state(kv)
        self._task = asyncio.create_task(self._watch(kv), name="pause-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        await self._changed.wait()

    async def _watch(self, kv: KeyValue) -> None:
        while True:
            watcher = None
            try:
                watcher = await kv.watchall()
                async for entry in watcher:
                    if entry is not None and self.state.apply(entry.key, entry.value, entry.operation):
                        self._pulse()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - any failure of the watch: watch again
                log.warning("watching %s failed (%s); watching again", CONTROL_BUCKET, err)
                await asyncio.sleep(1.0)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()  # type: ignore[no-untyped-call]


class TurnGate:
    """One job's pause and feedback gate; `async with` it around the job."""

    def __init__(
        self, job: Job, watch: PauseWatch, nc: NATS, js: JetStreamContext, *, runner_id: str
    ) -> None:
        self.job = job
        self._watch = watch
        self._nc = nc
        self._js = js
        self._runner_id = runner_id
        # The job's sandbox, looked up when a pause comes (it may be made after the gate).
        self.sandbox_of: Callable[[], Freezable | None] = lambda: None
        self.deadline: asyncio.Timeout | None = None  # the stage's limit, moved on by the time paused
        self._feedback: list[FeedbackAdded] = []
        self._known = {(f.actor, f.text) for f in job.feedback}
        self._sub: Subscription | None = None
        self._freezer: asyncio.Task[None] | None = None
        self._paused_since: float | None = None
        self._frozen: Freezable | None = None
        self._settled = asyncio.Event()  # pulsed when the follower paused or resumed
        self.paused_seconds = 0.0

    async def __aenter__(self) -> TurnGate:
        subject = event_subject(self.job.project.slug, self.job.task.key, "feedback.added")
        self._sub = await self._nc.subscribe(subject, cb=self._on_feedback)
        self._freezer = asyncio.create_task(self._follow_pauses(), name=f"pause-{self.job.idempotency_key}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._freezer is not None:
            self._freezer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._freezer
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    def _scope(self) -> Scope | None:
        return self._watch.state.scope_for(self.job.project.slug, self.job.task.key)

    async def _on_feedback(self, msg: Msg) -> None:
        try:
            ev = FeedbackAdded.model_validate_json(msg.data)
        except ValidationError:
            return
        if (ev.actor, ev.text) not in self._known:  # not already in the job (given at dispatch)
            self._known.add((ev.actor, ev.text))
            self._feedback.append(ev)

    async def _follow_pauses(self) -> None:
        """Freeze the sandbox the moment a pause arrives (a command may be running), thaw on resume."""
        while True:
            scope = self._scope()
            if scope is not None and self._paused_since is None:
                await self._pause(scope)
            elif scope is None and self._paused_since is not None:
                await self._resume()
            self._settled.set()
            self._settled = asyncio.Event()
            await self._watch.changed()

    async def _pause(self, scope: Scope) -> None:
        self._paused_since = time.monotonic()
        self._frozen = self.sandbox_of()
        if self._frozen is not None:
            await self._frozen.freeze()
        await self._publish(ExecutionPaused(**self._common(), scope=scope))
        log.info("job %s paused (%s pause)", self.job.idempotency_key, scope)

    async def _resume(self) -> None:
        assert self._paused_since is not None  # noqa: S101 - only called while paused
        waited = time.monotonic() - self._paused_since
        self._paused_since = None
        self.paused_seconds += waited
        when = self.deadline.when() if self.deadline is not None else None
        if self.deadline is not None and when is not None:
            self.deadline.reschedule(when + waited)
        frozen, self._frozen = self._frozen, None
        if frozen is not None:
            await frozen.thaw()
        await self._publish(ExecutionResumed(**self._common(), paused_seconds=round(waited, 3)))
        log.info("job %s resumed after %.1fs", self.job.idempotency_key, waited)

    def _common(self) -> dict[str, Any]:
        return {
            "project": self.job.project.slug,
            "task_key": self.job.task.key,
            "actor": f"runner:{self._runner_id}",
            "execution_id": self.job.job_id,
            "stage": self.job.stage,
            "runner_id": self._runner_id,
        }

    async def _publish(self, event: ExecutionPaused | ExecutionResumed) -> None:
        try:
            await bus.publish(self._js, event.subject(), event, msg_id=event.id)
        except Exception as err:  # noqa: BLE001 - the pause itself holds; the event is information
            log.warning("could not publish %s: %s", event.type, err)

    async def before_turn(self) -> list[Message]:
        """Wait while a pause covers the job; then the feedback that arrived since the last turn."""
        while self._scope() is not None or self._paused_since is not None:
            waits = {
                asyncio.ensure_future(self._watch.changed()),
                asyncio.ensure_future(self._settled.wait()),
            }
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()
        news, self._feedback = self._feedback, []
        return [{"role": "user", "content": f"{FEEDBACK_INTRO}\n\n{ev.actor}: {ev.text}"} for ev in news]
