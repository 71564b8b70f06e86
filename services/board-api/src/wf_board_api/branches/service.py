"""Reading pause scopes (the `paused.*` keys of wf_control, from the stream like the other KV reads)
and the pushes waiting for their remote (pending_pushes)."""

from __future__ import annotations

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.db.tables import pending_pushes, projects
from wf_common.pauses import PauseState
from wf_common.subjects import CONTROL_BUCKET, PAUSED_KEY

from wf_board_api.branches.schemas import PendingPush
from wf_board_api.errors import Unavailable


async def pause_state(js: JetStreamContext) -> PauseState:
    state = PauseState()
    prefix = f"$KV.{CONTROL_BUCKET}."
    try:
        info = await js.stream_info(f"KV_{CONTROL_BUCKET}", subjects_filter=f"{prefix}{PAUSED_KEY}.>")
        kv = await js.key_value(CONTROL_BUCKET)
        for subject in sorted(info.state.subjects or {}):
            key = subject[len(prefix) :]
            try:
                entry = await kv.get(key)
            except NotFoundError:  # deleted
                continue
            state.apply(key, entry.value, entry.operation)
    except NotFoundError:
        return state
    except nats.errors.Error as err:
        raise Unavailable(f"NATS is not answering ({err or type(err).__name__})") from err
    return state


async def list_pending_pushes(db: AsyncConnection, project: str | None = None) -> list[PendingPush]:
    query = (
        select(pending_pushes, projects.c.slug.label("project"))
        .join(projects, projects.c.id == pending_pushes.c.project_id)
        .order_by(pending_pushes.c.id)
    )
    if project is not None:
        query = query.where(projects.c.slug == project)
    rows = (await db.execute(query)).mappings().all()
    return [PendingPush.model_validate(dict(r)) for r in rows]
