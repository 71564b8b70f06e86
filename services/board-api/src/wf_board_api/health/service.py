"""Is the whole stack usable from here? NATS, the database, the orchestrator and at least one runner."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from sqlalchemy import text
from wf_common.commands import Ping

from wf_board_api.control.service import live_runners
from wf_board_api.health.schemas import Checks, HealthOut
from wf_board_api.state import AppState

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
OK = "ok"


async def _check(what: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(what, CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_SECONDS:.0f}s"
    except Exception as err:  # noqa: BLE001 - a boundary: any failure is reported or logged, never crashes the loop
        return str(err) or type(err).__name__
    return OK


async def _select_one(state: AppState) -> None:
    async with state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _ping(state: AppState) -> None:
    await state.gateway.send(Ping(actor="board-api"), within=CHECK_TIMEOUT_SECONDS)


async def _runner_count(state: AppState) -> int:
    try:
        return len(await asyncio.wait_for(live_runners(state.js), CHECK_TIMEOUT_SECONDS))
    except Exception as err:  # noqa: BLE001 - a boundary: any failure is reported or logged, never crashes the loop
        log.info("health: cannot read runners: %s", err)
        return 0


async def _sync_bridge(state: AppState) -> str:
    from wf_board_api.sync.service import bridge_running

    return OK if state.nc.is_connected and await bridge_running(state.nc) else "not answering on wf.sync.*"


async def check(state: AppState) -> HealthOut:
    nats_ok = state.nc.is_connected
    if nats_ok:
        database, orchestrator, runners = await asyncio.gather(
            _check(_select_one(state)), _check(_ping(state)), _runner_count(state)
        )
    else:
        database, orchestrator, runners = await _check(_select_one(state)), "unknown (no NATS)", 0
    checks = Checks(
        nats=OK if nats_ok else "disconnected", database=database, orchestrator=orchestrator, runners=runners,
        sync_bridge=await _sync_bridge(state) if state.settings.workflow.task_backend.sync_to else None,
    )  # fmt: skip
    named = (("nats", checks.nats), ("database", database), ("orchestrator", orchestrator))
    missing = [f"{name}: {value}" for name, value in named if value != OK]
    if runners == 0:
        missing.append("runners: no heartbeat in wf_runners; is an agent runner running?")
    if not missing:
        return HealthOut(status="ok", checks=checks)
    return HealthOut(
        status="unavailable", checks=checks, error="unavailable", message="not ready: " + "; ".join(missing)
    )
