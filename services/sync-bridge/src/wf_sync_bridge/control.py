"""The bridge's control subjects, request/reply wf.sync.<op> (queue group sync-bridge), used by the
board API behind `wf sync ...`: status, link, unlink, resync. Replies: {"ok": true, "data": ...} or
{"ok": false, "error": {"code", "message"}} with the codes of wf_common.errors."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from wf_common.db.sync_tables import outbox, target_status
from wf_common.keys import SLUG, TASK_KEY

from wf_sync_bridge import store
from wf_sync_bridge.adapters.base import RemoteError

if TYPE_CHECKING:
    from wf_sync_bridge.app import SyncBridge
    from wf_sync_bridge.syncer import TargetSync

PREFIX = "wf.sync"
OPS = ("status", "link", "unlink", "resync")


class ControlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def handle(bridge: SyncBridge, op: str, data: bytes) -> dict[str, Any]:
    try:
        req = _request(data)
        if op == "status":
            return {"ok": True, "data": await status(bridge)}
        if op == "resync":
            return {"ok": True, "data": await resync(bridge, _targets(bridge, req.get("target")))}
        if op in ("link", "unlink"):
            project, key = _task(req)
            target = _one_target(bridge, req.get("target"))
            if op == "link":
                return {"ok": True, "data": await link(target, project, key, str(req.get("remote_id") or ""))}
            return {"ok": True, "data": await unlink(target, project, key)}
        return _unknown(op)
    except ControlError as err:
        return {"ok": False, "error": {"code": err.code, "message": err.message}}
    except RemoteError as err:
        return {"ok": False, "error": {"code": "unavailable", "message": str(err)}}


def _request(data: bytes) -> dict[str, Any]:
    try:
        req = json.loads(data or b"{}")
    except ValueError:
        raise ControlError("invalid", "the request is not JSON") from None
    if not isinstance(req, dict):
        raise ControlError("invalid", "the request must be a JSON object")
    return req


def _unknown(op: str) -> dict[str, Any]:
    raise ControlError("invalid", f"unknown sync operation {op!r}; one of {list(OPS)}")


def _task(req: dict[str, Any]) -> tuple[str, str]:
    project, key = str(req.get("project") or ""), str(req.get("key") or "").upper()
    if not SLUG.match(project):
        raise ControlError("invalid", f"project: {project!r} is not a project slug")
    if not TASK_KEY.match(key):
        raise ControlError("invalid", f"key: {key!r} is not a task key like T-002")
    return project, key


def _targets(bridge: SyncBridge, name: Any) -> list[TargetSync]:
    if name in (None, ""):
        return bridge.targets
    t = bridge.target(str(name))
    if t is None:
        raise ControlError(
            "not_found", f"no sync target {name!r}; configured: {[t.name for t in bridge.targets]}"
        )
    return [t]


def _one_target(bridge: SyncBridge, name: Any) -> TargetSync:
    targets = _targets(bridge, name)
    if len(targets) != 1:
        raise ControlError("invalid", f"target: say which one, of {[t.name for t in targets]}")
    return targets[0]


async def status(bridge: SyncBridge) -> list[dict[str, Any]]:
    if bridge.db is None:
        raise ControlError("unavailable", "the sync bridge is still starting")
    async with bridge.db.connect() as conn:
        return [await target_status(conn, t.name, t.target.adapter) for t in bridge.targets]


async def resync(bridge: SyncBridge, targets: list[TargetSync]) -> dict[str, Any]:
    if bridge.db is None:
        raise ControlError("unavailable", "the sync bridge is still starting")
    queued = {}
    async with bridge.db.begin() as conn:
        for t in targets:
            queued[t.name] = await t.queue_reconcile(conn)
    for t in targets:
        t.wake.set()
        t.poll_now.set()
    return {"queued": queued}


async def link(t: TargetSync, project: str, key: str, remote_id: str) -> dict[str, Any]:
    if not remote_id:
        raise ControlError("invalid", "remote_id: give the item's id in the tracker")
    item = await t.adapter.get_task(remote_id)
    if item is None:
        raise ControlError("not_found", f"{t.name} has no item {remote_id!r}")
    async with t.db.begin() as conn:
        if await store.link_of(conn, t.name, project, key) is not None:
            raise ControlError("conflict", f"{project}/{key} is already linked to {t.name}; unlink it first")
        if await store.link_by_remote(conn, t.name, item.remote_id) is not None:
            raise ControlError("conflict", f"{item.display_id} is already linked to another task")
        row = await store.add_link(conn, t.name, project, key, item.remote_id, item.display_id, item.url)
        # Nothing agreed yet: the first sync writes the local task's fields there.
        await store.enqueue(conn, t.name, project, key, "sync")
    t.wake.set()
    return {
        "target": t.name,
        "project": project,
        "key": key,
        "remote_id": row.remote_id,
        "display_id": row.display_id,
    }


async def unlink(t: TargetSync, project: str, key: str) -> dict[str, Any]:
    async with t.db.begin() as conn:
        row = await store.link_of(conn, t.name, project, key)
        if row is None:
            raise ControlError("not_found", f"{project}/{key} is not linked to {t.name}")
        await store.unlink(conn, row.id)
        # Pending writes of the task there are moot now.
        await conn.execute(
            outbox.update()
            .where(
                outbox.c.target == t.name,
                outbox.c.project == project,
                outbox.c.task_key == key,
                outbox.c.status == "pending",
            )
            .values(status="done", last_error="unlinked")
        )
    return {"target": t.name, "project": project, "key": key, "remote_id": row.remote_id}
