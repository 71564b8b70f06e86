"""/api/sync/status, /api/sync/link, /api/sync/unlink, /api/sync/resync (`wf sync ...`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, StringConstraints
from wf_common.errors import CommandError
from wf_common.fields import Slug, TaskKey
from wf_common.text import LINE_PATTERN

from wf_board_api.schemas import COMMAND_RESPONSES, ERROR_RESPONSES
from wf_board_api.state import AppState, Db, State
from wf_board_api.sync import service

router = APIRouter(tags=["sync"])


# A sync_to target's name (wf_common.config.TARGET_NAME's shape).
TargetName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$", min_length=1, max_length=40)]
RemoteId = Annotated[str, StringConstraints(pattern=LINE_PATTERN, min_length=1, max_length=100)]


class LinkIn(BaseModel):
    project: Slug
    key: TaskKey = Field(description="the local task, e.g. T-002")
    remote_id: RemoteId = Field(description="the item's id in the tracker")
    target: TargetName | None = Field(None, description="which sync_to target; needed when there are several")


class UnlinkIn(BaseModel):
    project: Slug
    key: TaskKey
    target: TargetName | None = None


class ResyncIn(BaseModel):
    target: TargetName | None = None


def _require_targets(state: AppState) -> None:
    """No tracker configured is the board's state, not an outage: a 409 that says how to add one."""
    if not state.settings.workflow.task_backend.sync_to:
        raise CommandError(
            "conflict",
            "no tracker is configured: add a target under task_backend.sync_to in config.yaml "
            "(see config.example.yaml) and restart `wf start`",
        )


@router.get("/api/sync/status", responses=ERROR_RESPONSES)
async def sync_status(state: State, db: Db) -> dict[str, Any]:
    """Per target: linked tasks, last sync and poll, pending writes, failures and dead letters."""
    return {
        "running": await service.bridge_running(state.nc),
        "targets": await service.status(db, state.settings.workflow),
    }


@router.post("/api/sync/link", responses=COMMAND_RESPONSES)
async def sync_link(body: LinkIn, state: State) -> Any:
    _require_targets(state)
    return await service.ask(state.nc, "link", body.model_dump())


@router.post("/api/sync/unlink", responses=COMMAND_RESPONSES)
async def sync_unlink(body: UnlinkIn, state: State) -> Any:
    _require_targets(state)
    return await service.ask(state.nc, "unlink", body.model_dump())


@router.post("/api/sync/resync", responses=COMMAND_RESPONSES)
async def sync_resync(body: ResyncIn, state: State) -> Any:
    _require_targets(state)
    return await service.ask(state.nc, "resync", body.model_dump())
