"""The sync bridge's own tables, in the PostgreSQL schema `sync` (migrations: wf_sync_bridge.migrations,
version table sync.alembic_version). The bridge is their only writer; the board API reads them for
`wf sync status` (`target_status`). The bridge never writes the orchestrator's tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

SCHEMA = "sync"
metadata = MetaData(schema=SCHEMA)


def _at(name: str = "created_at") -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=False, server_default=func.now())


# Local task <-> remote item, per target. An unlinked row keeps its history (unlinked_at set).
links = Table(
    "links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("target", String(40), nullable=False),
    Column("project", String(40), nullable=False),
    Column("task_key", String(20), nullable=False),
    Column("remote_id", String(100), nullable=False),
    Column("display_id", String(100), nullable=False, server_default=""),
    Column("url", Text, nullable=False, server_default=""),
    _at("linked_at"),
    Column("last_synced_at", DateTime(timezone=True)),
    # The item's own "updated" time at the last sync: a poll that sees no newer one skips the item.
    Column("remote_updated_at", DateTime(timezone=True)),
    Column("unlinked_at", DateTime(timezone=True)),
    Index(
        "uq_links_task",
        "target",
        "project",
        "task_key",
        unique=True,
        postgresql_where=text("unlinked_at IS NULL"),
    ),
    Index(
        "uq_links_remote", "target", "remote_id", unique=True, postgresql_where=text("unlinked_at IS NULL")
    ),
)

# The value of each mapped field both sides last agreed on: a side that differs from it changed.
agreed = Table(
    "agreed",
    metadata,
    Column("link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), primary_key=True),
    Column("field", String(40), primary_key=True),
    Column("value", JSONB, nullable=False),
    _at("updated_at"),
)

# Comments known on both sides: a local feedback (its event id) <-> a remote comment id.
comments = Table(
    "comments",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=False),
    Column("local_ref", String(100)),
    Column("remote_id", String(100)),
    Column("origin", String(10), nullable=False),  # local | remote
    _at(),
    Index("uq_comments_local", "link_id", "local_ref", unique=True),
    Index("uq_comments_remote", "link_id", "remote_id", unique=True),
)

# The newest snapshot of each local task the bridge has seen on WF_EVENTS (its view of the local side).
mirror = Table(
    "mirror",
    metadata,
    Column("project", String(40), primary_key=True),
    Column("task_key", String(20), primary_key=True),
    Column("snapshot", JSONB, nullable=False),
    Column("stream_seq", BigInteger, nullable=False),
    _at("updated_at"),
)

# Where change detection is per target: Asana's sync token, the time of the last poll, the last reconcile.
cursors = Table(
    "cursors",
    metadata,
    Column("target", String(40), primary_key=True),
    Column("name", String(40), primary_key=True),
    Column("value", Text, nullable=False),
    _at("updated_at"),
)

# Writes to trackers, decided in the same transaction that recorded why; sent in order per task.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("target", String(40), nullable=False),
    Column("project", String(40), nullable=False),
    Column("task_key", String(20), nullable=False),
    Column("op", String(20), nullable=False),  # create | sync | comment
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", String(10), nullable=False, server_default="pending"),  # pending | done | dead
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    _at(),
    Column("done_at", DateTime(timezone=True)),
    Index("ix_outbox_pending", "target", "status", "next_at"),
)

# Messages already handled (WF_EVENTS event ids, webhook delivery ids): a redelivery changes nothing.
inbox = Table(
    "inbox",
    metadata,
    Column("source", String(60), primary_key=True),
    Column("delivery_id", String(200), primary_key=True),
    _at("received_at"),
)

# Both sides changed a field: which value won and the one that did not.
audit = Table(
    "audit",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("target", String(40), nullable=False),
    Column("project", String(40), nullable=False),
    Column("task_key", String(20), nullable=False),
    Column("field", String(40), nullable=False),
    Column("kept", JSONB),
    Column("discarded", JSONB),
    Column("winner", String(10), nullable=False),  # local | remote | refused
    Column("note", Text, nullable=False, server_default=""),
    _at("at"),
)

# Counters shown by `wf sync status` (rejected webhooks, failed calls), per target.
counters = Table(
    "counters",
    metadata,
    Column("target", String(40), primary_key=True),
    Column("name", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False, server_default=text("0")),
)


async def target_status(conn: AsyncConnection, target: str, adapter: str) -> dict[str, Any]:
    """What `wf sync status` shows for one target: linked tasks, last sync and poll, pending writes,
    failures, dead letters (with the newest reason) and refused webhooks."""
    linked = await conn.scalar(
        select(func.count()).where(links.c.target == target, links.c.unlinked_at.is_(None))
    )
    by_status = {
        str(r[0]): int(r[1])
        for r in await conn.execute(
            select(outbox.c.status, func.count()).where(outbox.c.target == target).group_by(outbox.c.status)
        )
    }
    counts = {
        str(r[0]): int(r[1])
        for r in await conn.execute(
            select(counters.c.name, counters.c.value).where(counters.c.target == target)
        )
    }
    last_sync = await conn.scalar(select(func.max(links.c.last_synced_at)).where(links.c.target == target))
    last_poll = await conn.scalar(
        select(cursors.c.value).where(cursors.c.target == target, cursors.c.name == "polled_at")
    )
    last_dead = await conn.scalar(
        select(outbox.c.last_error)
        .where(outbox.c.target == target, outbox.c.status == "dead")
        .order_by(outbox.c.id.desc())
        .limit(1)
    )
    return {
        "target": target,
        "adapter": adapter,
        "linked": int(linked or 0),
        "last_sync": last_sync.isoformat() if last_sync else None,
        "last_poll": last_poll,
        "pending": by_status.get("pending", 0),
        "dead": by_status.get("dead", 0),
        "last_dead_error": last_dead,
        "failures": counts.get("failures", 0),
        "rate_limited": counts.get("rate_limited", 0),
        "webhooks_rejected": counts.get("webhooks_rejected", 0),
    }
