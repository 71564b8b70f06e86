"""One target's sync: the outbox worker (sends in order per task, honours rate limits, backs off,
dead-letters), change detection (polling with an overlap window, webhooks as a wake-up, a periodic full
reconcile) and the per-task sync itself (link or create, three-way merge, comments both ways)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from wf_common.config import ENTRY_STAGE, FINAL_STAGE, SyncTarget, WorkflowConfig
from wf_common.db.sync_tables import audit
from wf_common.errors import BusError
from wf_common.events import TaskSnapshot

from wf_sync_bridge import store
from wf_sync_bridge.adapters.base import (
    PermanentError,
    RateLimited,
    RemoteError,
    RemoteItem,
    TaskAdapter,
    TransientError,
)
from wf_sync_bridge.fields import BODY_FIELDS, local_fields, marker_of, parse_body, render_body
from wf_sync_bridge.local import LocalTasks, Refused
from wf_sync_bridge.merge import Conflict, merge

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class TargetSync:
    def __init__(
        self,
        target: SyncTarget,
        adapter: TaskAdapter,
        db: AsyncEngine,
        local: LocalTasks,
        workflow: WorkflowConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.target = target
        self.name = target.target_name
        self.adapter = adapter
        self.db = db
        self.local = local
        self.actor = f"sync:{self.name}"
        self.clock = clock
        stages = [ENTRY_STAGE, *(s.name for s in workflow.pipeline.stages), FINAL_STAGE]
        self.to_remote = {s: target.remote_stage(s) for s in stages}
        self.to_local = {r: s for s, r in self.to_remote.items()}
        self.wake = asyncio.Event()
        self.poll_now = asyncio.Event()
        self.paused_until: datetime | None = None
        self.last_poll: datetime | None = None

    def covers(self, project: str) -> bool:
        return not self.target.projects or project in self.target.projects

    @property
    def remote_stages(self) -> list[str]:
        return list(dict.fromkeys(self.to_remote.values()))

    # ------------------------------------------------------------------------------------ worker

    async def run_worker(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            worked = await self.work_once()
            if worked:
                continue
            delay = 1.0
            async with self.db.connect() as conn:
                due = await store.next_due(conn, self.name)
            if due is not None:
                delay = min(delay, max(0.01, (due - self.clock()).total_seconds()))
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(self.wake, stop), delay)

    async def work_once(self) -> int:
        """Send every due op once; returns how many ran."""
        now = self.clock()
        if self.paused_until is not None and now < self.paused_until:
            return 0
        async with self.db.connect() as conn:
            ops = await store.ready_ops(conn, self.name, now)
        ran = 0
        for op in ops:
            if self.paused_until is not None and self.clock() < self.paused_until:
                break
            await self.run_op(op)
            ran += 1
        return ran

    async def run_op(self, op: store.Op) -> None:
        async with self.db.begin() as conn:
            # Counted before the call: after a crash mid-call, attempts > 0 says "look before creating".
            await store.start_attempt(conn, op.id)
        try:
            await self._dispatch(op)
        except RateLimited as err:
            wait = max(err.retry_after, 0.05)
            self.paused_until = self.clock() + timedelta(seconds=wait)
            log.info("%s: rate limited, waiting %.1fs", self.name, wait)
            async with self.db.begin() as conn:
                await store.retry_op(conn, op.id, self.paused_until, str(err), count=False)
                await store.count(conn, self.name, "rate_limited")
        except (TransientError, BusError) as err:
            await self._transient(op, str(err))
        except (PermanentError, Refused) as err:
            log.error(  # noqa: TRY400 - the reason is the message; no traceback is needed
                "%s: %s %s/%s dead-lettered: %s", self.name, op.op, op.project, op.task_key, err
            )
            async with self.db.begin() as conn:
                await store.dead_op(conn, op.id, str(err))
                await store.count(conn, self.name, "failures")
        except Exception as err:
            log.exception("%s: %s %s/%s failed unexpectedly", self.name, op.op, op.project, op.task_key)
            await self._transient(op, f"{type(err).__name__}: {err}")
        else:
            async with self.db.begin() as conn:
                await store.finish_op(conn, op.id)

    async def _dispatch(self, op: store.Op) -> None:
        if op.op == "sync":
            await self.sync_task(op)
        elif op.op == "comment":
            await self.send_comment(op)
        else:
            raise PermanentError(f"unknown outbox op {op.op!r}")

    async def _transient(self, op: store.Op, error: str) -> None:
        attempts = op.attempts + 1
        async with self.db.begin() as conn:
            await store.count(conn, self.name, "failures")
            if attempts >= self.target.max_attempts:
                log.error(
                    "%s: %s %s/%s dead after %d attempts: %s",
                    self.name,
                    op.op,
                    op.project,
                    op.task_key,
                    attempts,
                    error,
                )
                await store.dead_op(conn, op.id, f"gave up after {attempts} attempts: {error}")
                return
            backoff = min(MAX_BACKOFF, 0.2 * 2**attempts) * (0.5 + random.random() / 2)  # noqa: S311 - jitter
            log.warning(
                "%s: %s %s/%s failed (%s), retry in %.1fs",
                self.name,
                op.op,
                op.project,
                op.task_key,
                error,
                backoff,
            )
            await store.retry_op(conn, op.id, self.clock() + timedelta(seconds=backoff), error)

    # -------------------------------------------------------------------------------- task sync

    def remote_fields(self, item: RemoteItem) -> dict[str, Any]:
        fields: dict[str, Any] = {"title": item.title, **parse_body(item.body)}
        if item.stage in self.to_local:
            fields["stage"] = self.to_local[item.stage]
        return fields

    def body(self, fields: dict[str, Any], project: str, key: str) -> str:
        return render_body(fields, marker_of(project, key))

    async def sync_task(self, op: store.Op) -> None:
        async with self.db.connect() as conn:
            snap = await store.mirrored(conn, op.project, op.task_key)
            link = await store.link_of(conn, self.name, op.project, op.task_key)
        if snap is None:
            return  # nothing known about the task locally (yet)
        task = TaskSnapshot.model_validate(snap)
        local = local_fields(task)
        cancelled = task.state == "cancelled" and self.target.propagate_deletes
        if link is None:
            if op.payload.get("link_only") or cancelled:
                return
            async with self.db.connect() as conn:
                if await store.was_unlinked(conn, self.name, op.project, op.task_key):
                    return  # unlinked on purpose: not made there again
            link = await self._create(op, local)
            if link is None:
                return
        if cancelled:
            await self._delete_remote(link)
            return
        item = await self.adapter.get_task(link.remote_id)
        if item is None:
            await self._remote_deleted(link)
            return
        async with self.db.connect() as conn:
            agreed = await store.agreed_of(conn, link.id)
        merged = merge(
            local,
            self.remote_fields(item),
            agreed,
            local_at=task.updated_at or self.clock(),
            remote_at=item.updated_at,
        )
        refused = await self._pull(link, merged.pull)
        for f, value in refused.items():  # the orchestrator said no: the local value stands, both sides
            merged.push[f] = merged.agreed[f] = value
        await self._push(link, merged.push, merged.agreed)
        await self._pull_comments(link)
        async with self.db.begin() as conn:
            await store.set_agreed(conn, link.id, merged.agreed, item.updated_at)
            for c in merged.conflicts:
                await self._audit(conn, link, c.field, c.winner, c.kept, c.discarded, "both sides changed")
        for c in merged.conflicts:
            await self.adapter.add_comment(link.remote_id, _conflict_note(c))

    async def _create(self, op: store.Op, local: dict[str, Any]) -> store.Link | None:
        marker = marker_of(op.project, op.task_key)
        item = await self.adapter.find_by_marker(marker) if op.attempts > 0 else None
        if item is None:
            item = await self.adapter.create_task(
                local["title"],
                self.body(local, op.project, op.task_key),
                self.to_remote[local["stage"]],
                marker,
            )
        async with self.db.begin() as conn:
            if await store.link_by_remote(conn, self.name, item.remote_id) is not None:
                raise PermanentError(f"{item.display_id} is already linked to another task")
            link = await store.add_link(
                conn, self.name, op.project, op.task_key, item.remote_id, item.display_id, item.url
            )
            # What the item holds now is what both sides start from; the merge then sends any difference.
            await store.set_agreed(conn, link.id, {**local, **self.remote_fields(item)})
        log.info("%s: linked %s/%s to %s", self.name, op.project, op.task_key, item.display_id)
        return link

    async def _remote_deleted(self, link: store.Link) -> None:
        """Deleted there: unlinked; with propagate_deletes the task is cancelled here too (through the
        orchestrator, which may refuse, e.g. while it runs: then a feedback note says so)."""
        note = "deleted in the tracker: unlinked"
        if self.target.propagate_deletes:
            reason = f"{link.display_id} was deleted in {self.name}"
            try:
                await self.local.cancel(self.actor, link.project, link.task_key, reason)
                note = "deleted in the tracker: unlinked and cancelled here"
            except Refused as err:
                note = f"deleted in the tracker: unlinked; not cancelled here: {err.message}"
                await self.local.feedback(
                    self.actor,
                    link.project,
                    link.task_key,
                    f"{reason}; the task was not cancelled: {err.message}",
                )
        async with self.db.begin() as conn:
            await store.unlink(conn, link.id)
            await self._audit(conn, link, "link", "remote", None, link.remote_id, note)
        log.info("%s: %s/%s %s", self.name, link.project, link.task_key, note)

    async def _delete_remote(self, link: store.Link) -> None:
        """Cancelled here, with propagate_deletes: the item is deleted (or closed) there and unlinked."""
        done = await self.adapter.delete_task(link.remote_id)
        async with self.db.begin() as conn:
            await store.unlink(conn, link.id)
            await self._audit(
                conn, link, "link", "local", None, link.remote_id, f"cancelled here: {done} in {self.name}"
            )
        log.info(
            "%s: %s/%s cancelled: %s %s there", self.name, link.project, link.task_key, done, link.display_id
        )

    async def _pull(self, link: store.Link, pull: dict[str, Any]) -> dict[str, Any]:
        """Write remote changes locally through commands; returns the fields the orchestrator refused,
        with the local value to keep."""
        refused: dict[str, Any] = {}
        edits = {f: v for f, v in pull.items() if f != "stage"}
        if edits:
            try:
                await self.local.edit(self.actor, link.project, link.task_key, edits)
            except Refused as err:
                refused.update(await self._refused(link, edits, err))
        if "stage" in pull:
            try:
                await self.local.move(self.actor, link.project, link.task_key, pull["stage"])
            except Refused as err:
                refused.update(await self._refused(link, {"stage": pull["stage"]}, err))
        return refused

    async def _refused(self, link: store.Link, fields: dict[str, Any], err: Refused) -> dict[str, Any]:
        async with self.db.connect() as conn:
            snap = await store.mirrored(conn, link.project, link.task_key)
        local = local_fields(TaskSnapshot.model_validate(snap))
        async with self.db.begin() as conn:
            for f, v in fields.items():
                await self._audit(conn, link, f, "refused", local[f], v, err.message)
        await self.adapter.add_comment(
            link.remote_id,
            f"Workflow Hub did not take the change of {', '.join(fields)}: {err.message}. "
            "The task's own value was put back.",
        )
        return {f: local[f] for f in fields}

    async def _push(self, link: store.Link, push: dict[str, Any], final: dict[str, Any]) -> None:
        title = push.get("title")
        body = self.body(final, link.project, link.task_key) if any(f in push for f in BODY_FIELDS) else None
        if title is not None or body is not None:
            await self.adapter.update_task(link.remote_id, title=title, body=body)
        if "stage" in push:
            await self.adapter.move_task_to_stage(link.remote_id, self.to_remote[push["stage"]])

    async def _pull_comments(self, link: store.Link) -> None:
        async with self.db.connect() as conn:
            known = await store.known_remote_comments(conn, link.id)
        for c in await self.adapter.get_task_history(link.remote_id):
            if c.remote_id in known or c.author_id == self.adapter.self_id:
                continue
            async with self.db.begin() as conn:
                await store.map_comment(conn, link.id, local_ref=None, remote_id=c.remote_id, origin="remote")
                # Committed only once the orchestrator took it: a failure retries the whole sync.
                await self.local.feedback(
                    self.actor,
                    link.project,
                    link.task_key,
                    f"{c.author_name or 'someone'} on {self.name}: {c.text}",
                )

    async def send_comment(self, op: store.Op) -> None:
        async with self.db.connect() as conn:
            link = await store.link_of(conn, self.name, op.project, op.task_key)
            if link is None:
                raise TransientError(f"{op.project}/{op.task_key} is not linked to {self.name} yet")
            ref = str(op.payload["ref"])
            if await store.comment_sent(conn, link.id, ref):
                return
        text = f"{op.payload['text']}\n\n— {op.payload.get('actor', 'human')}, via Workflow Hub"
        remote_id = None
        if op.attempts > 0:  # an earlier try may have posted it before its answer was lost
            remote_id = next(
                (
                    c.remote_id
                    for c in await self.adapter.list_comments(link.remote_id)
                    if c.text.strip() == text.strip()
                ),
                None,
            )
        if remote_id is None:
            remote_id = await self.adapter.add_comment(link.remote_id, text)
        async with self.db.begin() as conn:
            await store.map_comment(conn, link.id, local_ref=ref, remote_id=remote_id, origin="local")

    async def _audit(
        self,
        conn: AsyncConnection,
        link: store.Link,
        field: str,
        winner: str,
        kept: Any,
        discarded: Any,
        note: str,
    ) -> None:
        await conn.execute(
            audit.insert().values(
                target=self.name,
                project=link.project,
                task_key=link.task_key,
                field=field,
                winner=winner,
                kept=kept,
                discarded=discarded,
                note=note[:2000],
            )
        )

    # ------------------------------------------------------------------------- change detection

    async def run_poller(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.poll_once()
            except RemoteError as err:
                log.warning("%s: poll failed: %s", self.name, err)
                if isinstance(err, RateLimited):
                    self.paused_until = self.clock() + timedelta(seconds=err.retry_after)
            self.poll_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(self.poll_now, stop), self.target.poll_interval_seconds)

    async def poll_once(self) -> int:
        """Ask the tracker what changed since the last poll (minus the overlap); queue a sync for each
        linked item. Returns how many syncs were queued."""
        started = self.clock()
        async with self.db.connect() as conn:
            token = await store.cursor(conn, self.name, "token")
            last = await store.cursor(conn, self.name, "polled_at")
            reconciled = await store.cursor(conn, self.name, "reconciled_at")
        since = (
            datetime.fromisoformat(last) - timedelta(seconds=self.target.poll_overlap_seconds)
            if last
            else None
        )
        changes = await self.adapter.changes_since(token, since)
        queued = 0
        due = reconciled is None or started - datetime.fromisoformat(reconciled) > timedelta(
            seconds=self.target.reconcile_interval_seconds
        )
        async with self.db.begin() as conn:
            for ch in changes.changes:
                if ch.actor_id and ch.actor_id == self.adapter.self_id:
                    continue  # our own write, seen again
                link = await store.link_by_remote(conn, self.name, ch.remote_id)
                if link is not None and link.stale(ch.updated_at):
                    queued += await store.enqueue(conn, self.name, link.project, link.task_key, "sync")
            if changes.full_resync or due:
                queued += await self.queue_reconcile(conn)
                await store.set_cursor(conn, self.name, "reconciled_at", started.isoformat())
            if changes.cursor:
                await store.set_cursor(conn, self.name, "token", changes.cursor)
            await store.set_cursor(conn, self.name, "polled_at", started.isoformat())
        self.last_poll = started
        if queued:
            self.wake.set()
        return queued

    async def queue_reconcile(self, conn: AsyncConnection) -> int:
        """A full pass: every linked task, and every mirrored task of a covered project not linked yet.
        Returns how many tasks will be synced (a task with a sync already waiting counts once)."""
        tasks = set(await store.mirrored_tasks(conn, self.target.projects))
        tasks |= {(lk.project, lk.task_key) for lk in await store.active_links(conn, self.name)}
        for project, key in sorted(tasks):
            await store.enqueue(conn, self.name, project, key, "sync")
        return len(tasks)


def _conflict_note(c: Conflict) -> str:
    side = "Workflow Hub's" if c.winner == "local" else "this tracker's"
    return (
        f"Sync conflict on {c.field}: both sides changed it; {side} newer value was kept. "
        f"The other value was: {c.discarded!r} (kept in the sync audit log)."
    )


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    ta, tb = asyncio.create_task(a.wait()), asyncio.create_task(b.wait())
    try:
        await asyncio.wait({ta, tb}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ta.cancel()
        tb.cancel()
