"""/api/sync/status, /api/sync/link, /api/sync/unlink, /api/sync/resync (`wf sync ...`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from wf_board_api.schemas import ERROR_RESPONSES
from wf_board_api.state import Db, State
from wf_board_api.sync import service

router = APIRouter(tags=["sync"])


class LinkIn(BaseModel):
    project: str = Field(min_length=1, max_length=40)
    key: str = Field(min_length=1, max_length=20, description="the local task, e.g. T-002")
    remote_id: str = Field(min_length=1, max_length=100, description="the item's id in the tracker")
    target: str | None = Field(None, description="which sync_to target; needed when there are several")


class UnlinkIn(BaseModel):
    project: str = Field(min_length=1, max_length=40)
    key: str = Field(min_length=1, max_length=20)
    target: str | None = None


class ResyncIn(BaseModel):
    target: str | None = None


@router.get("/api/sync/status", responses=ERROR_RESPONSES)
async def sync_status(state: State, db: Db) -> dict[str, Any]:
    """Per target: linked tasks, last sync and poll, pending writes, failures and dead letters."""
    return {
        "running": await service.bridge_running(state.nc),
        "targets": await service.status(db, state.settings.workflow),
    }


@router.post("/api/sync/link", responses=ERROR_RESPONSES)
async def sync_link(body: LinkIn, state: State) -> Any:
    return await service.ask(state.nc, "link", body.model_dump())


@router.post("/api/sync/unlink", responses=ERROR_RESPONSES)
async def sync_unlink(body: UnlinkIn, state: State) -> Any:
    return await service.ask(state.nc, "unlink", body.model_dump())


@router.post("/api/sync/resync", responses=ERROR_RESPONSES)
async def sync_resync(body: ResyncIn, state: State) -> Any:
    return await service.ask(state.nc, "resync", body.model_dump())
