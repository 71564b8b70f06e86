"""Queries on attachments."""

from __future__ import annotations

from sqlalchemy import RowMapping, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.db.tables import attachments, bugs


async def for_task(conn: AsyncConnection, task_id: int) -> list[RowMapping]:
    """Files on the task itself and on its bugs (a QA failure attaches its log to the bug)."""
    query = (
        select(
            attachments.c.id,
            attachments.c.filename,
            attachments.c.content_type,
            attachments.c.size,
            bugs.c.bug_key,
            attachments.c.created_by,
            attachments.c.created_at,
        )
        .outerjoin(bugs, bugs.c.id == attachments.c.bug_id)
        .where(or_(attachments.c.task_id == task_id, bugs.c.task_id == task_id))
        .order_by(attachments.c.id)
    )
    return list((await conn.execute(query)).mappings().all())


async def get(conn: AsyncConnection, attachment_id: int) -> RowMapping | None:
    query = select(
        attachments.c.id, attachments.c.filename, attachments.c.content_type, attachments.c.content
    ).where(attachments.c.id == attachment_id)
    return (await conn.execute(query)).mappings().first()
