"""Reads and writes of the bridge's tables (schema `sync`), one function per question or decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.db.sync_tables import agreed, comments, counters, cursors, inbox, links, mirror, outbox


@dataclass
class Link:
    id: int
    target: str
    project: str
    task_key: str
    remote_id: str
    display_id: str
    remote_updated_at: datetime | None = None
    last_synced_at: datetime | None = None

    def stale(self, updated_at: datetime | None) -> bool:
        """Whether a change the tracker reports (at `updated_at`) may be news to us. Services with
        whole-second timestamps (GitHub) can hide a second change in the same second, so an equal time
        counts as news for a moment after the sync that recorded it."""
        seen = self.remote_updated_at
        if updated_at is None or seen is None or updated_at > seen:
            return True
        synced = self.last_synced_at or seen
        return updated_at == seen and (synced - seen).total_seconds() < 2


@dataclass
class Op:
    id: int
    target: str
    project: str
    task_key: str
    op: str
    payload: dict[str, Any]
    attempts: int


async def seen(conn: AsyncConnection, source: str, delivery_id: str) -> bool:
    """Record a delivery; True if it was recorded before (a redelivery or a replayed webhook)."""
    r = await conn.execute(
        insert(inbox).values(source=source, delivery_id=delivery_id[:200]).on_conflict_do_nothing()
    )
    return r.rowcount == 0


async def save_mirror(
    conn: AsyncConnection, project: str, key: str, snapshot: dict[str, Any], seq: int
) -> bool:
    """Keep the newest snapshot (by stream sequence); False if `seq` is older than the one stored."""
    stmt = insert(mirror).values(project=project, task_key=key, snapshot=snapshot, stream_seq=seq)
    r = await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[mirror.c.project, mirror.c.task_key],
            set_={
                "snapshot": stmt.excluded.snapshot,
                "stream_seq": stmt.excluded.stream_seq,
                "updated_at": func.now(),
            },
            where=mirror.c.stream_seq < stmt.excluded.stream_seq,
        )
    )
    return r.rowcount > 0


async def mirrored(conn: AsyncConnection, project: str, key: str) -> dict[str, Any] | None:
    row = await conn.scalar(
        select(mirror.c.snapshot).where(mirror.c.project == project, mirror.c.task_key == key)
    )
    return dict(row) if row is not None else None


async def mirrored_tasks(conn: AsyncConnection, projects: list[str]) -> list[tuple[str, str]]:
    q = select(mirror.c.project, mirror.c.task_key)
    if projects:
        q = q.where(mirror.c.project.in_(projects))
    return [(r.project, r.task_key) for r in await conn.execute(q)]


def _link(row: Any) -> Link:
    return Link(
        row.id,
        row.target,
        row.project,
        row.task_key,
        row.remote_id,
        row.display_id,
        row.remote_updated_at,
        row.last_synced_at,
    )


async def link_of(conn: AsyncConnection, target: str, project: str, key: str) -> Link | None:
    row = (
        await conn.execute(
            select(links).where(
                links.c.target == target,
                links.c.project == project,
                links.c.task_key == key,
                links.c.unlinked_at.is_(None),
            )
        )
    ).first()
    return _link(row) if row else None


async def was_unlinked(conn: AsyncConnection, target: str, project: str, key: str) -> bool:
    """The task had a link to the target that was ended (`wf sync unlink`, a delete on either side):
    it is not mirrored there again unless `wf sync link` links it."""
    found = await conn.scalar(
        select(links.c.id)
        .where(
            links.c.target == target,
            links.c.project == project,
            links.c.task_key == key,
            links.c.unlinked_at.is_not(None),
        )
        .limit(1)
    )
    return found is not None


async def link_by_remote(conn: AsyncConnection, target: str, remote_id: str) -> Link | None:
    row = (
        await conn.execute(
            select(links).where(
                links.c.target == target, links.c.remote_id == remote_id, links.c.unlinked_at.is_(None)
            )
        )
    ).first()
    return _link(row) if row else None


async def active_links(conn: AsyncConnection, target: str) -> list[Link]:
    rows = await conn.execute(select(links).where(links.c.target == target, links.c.unlinked_at.is_(None)))
    return [_link(r) for r in rows]


async def add_link(
    conn: AsyncConnection, target: str, project: str, key: str, remote_id: str, display_id: str, url: str
) -> Link:
    row = (
        await conn.execute(
            links.insert()
            .values(
                target=target,
                project=project,
                task_key=key,
                remote_id=remote_id,
                display_id=display_id,
                url=url,
            )
            .returning(links)
        )
    ).one()
    return _link(row)


async def unlink(conn: AsyncConnection, link_id: int) -> None:
    await conn.execute(update(links).where(links.c.id == link_id).values(unlinked_at=func.now()))


async def agreed_of(conn: AsyncConnection, link_id: int) -> dict[str, Any]:
    rows = await conn.execute(select(agreed.c.field, agreed.c.value).where(agreed.c.link_id == link_id))
    return {r.field: r.value for r in rows}


async def set_agreed(
    conn: AsyncConnection, link_id: int, values: dict[str, Any], remote_updated_at: datetime | None = None
) -> None:
    for f, v in values.items():
        stmt = insert(agreed).values(link_id=link_id, field=f, value=v)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[agreed.c.link_id, agreed.c.field], set_={"value": v, "updated_at": func.now()}
            )
        )
    seen = {"remote_updated_at": remote_updated_at} if remote_updated_at is not None else {}
    await conn.execute(update(links).where(links.c.id == link_id).values(last_synced_at=func.now(), **seen))


async def known_remote_comments(conn: AsyncConnection, link_id: int) -> set[str]:
    rows = await conn.execute(
        select(comments.c.remote_id).where(comments.c.link_id == link_id, comments.c.remote_id.is_not(None))
    )
    return {r.remote_id for r in rows}


async def comment_sent(conn: AsyncConnection, link_id: int, local_ref: str) -> bool:
    return (
        await conn.scalar(
            select(comments.c.id).where(comments.c.link_id == link_id, comments.c.local_ref == local_ref)
        )
        is not None
    )


async def map_comment(
    conn: AsyncConnection, link_id: int, *, local_ref: str | None, remote_id: str, origin: str
) -> None:
    await conn.execute(
        insert(comments)
        .values(link_id=link_id, local_ref=local_ref, remote_id=remote_id, origin=origin)
        .on_conflict_do_nothing()
    )


async def enqueue(
    conn: AsyncConnection, target: str, project: str, key: str, op: str, payload: dict[str, Any] | None = None
) -> bool:
    """Add an outbox row. A `sync` is skipped when one not yet tried is waiting for the task: that one
    reads both sides when it runs, so it covers this change too."""
    if op == "sync":
        waiting = await conn.scalar(
            select(outbox.c.id).where(
                outbox.c.target == target,
                outbox.c.project == project,
                outbox.c.task_key == key,
                outbox.c.op == "sync",
                outbox.c.status == "pending",
                outbox.c.attempts == 0,
            )
        )
        if waiting is not None:
            return False
    await conn.execute(
        outbox.insert().values(target=target, project=project, task_key=key, op=op, payload=payload or {})
    )
    return True


async def ready_ops(conn: AsyncConnection, target: str, now: datetime) -> list[Op]:
    """The oldest pending op of each task of `target`, if it is due (ops of one task run in order)."""
    heads = (
        select(outbox)
        .where(outbox.c.target == target, outbox.c.status == "pending")
        .ext(distinct_on(outbox.c.project, outbox.c.task_key))
        .order_by(outbox.c.project, outbox.c.task_key, outbox.c.id)
        .subquery()
    )
    rows = await conn.execute(select(heads).where(heads.c.next_at <= now).order_by(heads.c.id).limit(100))
    return [Op(r.id, r.target, r.project, r.task_key, r.op, dict(r.payload), r.attempts) for r in rows]


async def next_due(conn: AsyncConnection, target: str) -> datetime | None:
    due: datetime | None = await conn.scalar(
        select(func.min(outbox.c.next_at)).where(outbox.c.target == target, outbox.c.status == "pending")
    )
    return due


async def start_attempt(conn: AsyncConnection, op_id: int) -> None:
    await conn.execute(update(outbox).where(outbox.c.id == op_id).values(attempts=outbox.c.attempts + 1))


async def finish_op(conn: AsyncConnection, op_id: int) -> None:
    await conn.execute(
        update(outbox).where(outbox.c.id == op_id).values(status="done", done_at=func.now(), last_error=None)
    )


async def retry_op(
    conn: AsyncConnection, op_id: int, at: datetime, error: str, *, count: bool = True
) -> None:
    values: dict[str, Any] = {"next_at": at, "last_error": error[:2000]}
    if not count:  # a rate limit is not a failure of the op
        values["attempts"] = outbox.c.attempts - 1
    await conn.execute(update(outbox).where(outbox.c.id == op_id).values(**values))


async def dead_op(conn: AsyncConnection, op_id: int, error: str) -> None:
    await conn.execute(
        update(outbox)
        .where(outbox.c.id == op_id)
        .values(status="dead", done_at=func.now(), last_error=error[:2000])
    )


async def cursor(conn: AsyncConnection, target: str, name: str) -> str | None:
    return await conn.scalar(
        select(cursors.c.value).where(cursors.c.target == target, cursors.c.name == name)
    )


async def set_cursor(conn: AsyncConnection, target: str, name: str, value: str) -> None:
    stmt = insert(cursors).values(target=target, name=name, value=value)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[cursors.c.target, cursors.c.name], set_={"value": value, "updated_at": func.now()}
        )
    )


async def count(conn: AsyncConnection, target: str, name: str, by: int = 1) -> None:
    stmt = insert(counters).values(target=target, name=name, value=by)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[counters.c.target, counters.c.name], set_={"value": counters.c.value + by}
        )
    )


__all__ = ["Link", "Op", "and_"]
