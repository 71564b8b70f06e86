"""Read the sync bridge's tables (read-only) and ask the bridge to act, over NATS request/reply
wf.sync.<op> (the bridge answers {"ok", "data"} or {"ok": false, "error": {"code", "message"}})."""

from __future__ import annotations

import json
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.config import WorkflowConfig
from wf_common.db.sync_tables import target_status
from wf_common.errors import CommandError

from wf_board_api.errors import Unavailable

SYNC_PREFIX = "wf.sync"
BRIDGE_DOWN = (
    "the sync bridge is not answering; `wf start` runs it when task_backend.sync_to is set in config.yaml"
)


async def status(conn: AsyncConnection, workflow: WorkflowConfig) -> list[dict[str, Any]]:
    if not await conn.scalar(text("SELECT to_regclass('sync.links') IS NOT NULL")):
        # The bridge has not run yet: nothing linked, nothing pending.
        return [
            {
                "target": t.target_name,
                "adapter": t.adapter,
                "linked": 0,
                "pending": 0,
                "dead": 0,
                "failures": 0,
            }
            for t in workflow.task_backend.sync_to
        ]
    return [await target_status(conn, t.target_name, t.adapter) for t in workflow.task_backend.sync_to]


async def ask(nc: NATS, op: str, body: dict[str, Any], timeout: float = 15.0) -> Any:  # noqa: ASYNC109
    try:
        msg = await nc.request(f"{SYNC_PREFIX}.{op}", json.dumps(body).encode(), timeout=timeout)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError) as err:
        raise Unavailable(BRIDGE_DOWN) from err
    try:
        reply = json.loads(msg.data)
    except ValueError:
        raise CommandError("internal", f"the sync bridge sent an unreadable reply to {op}") from None
    if not reply.get("ok"):
        refusal = reply.get("error") or {}
        raise CommandError(refusal.get("code", "internal"), refusal.get("message", "the sync bridge refused"))
    return reply.get("data")


async def bridge_running(nc: NATS) -> bool:
    try:
        await nc.request(f"{SYNC_PREFIX}.status", b"{}", timeout=1.0)
    except (nats.errors.Error, TimeoutError):
        return False
    return True
