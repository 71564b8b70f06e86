"""/api/control (pause and resume the pipeline) and /api/runners (who is working)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from wf_common.commands import Pause, Resume

from wf_board_api.branches import service as branches
from wf_board_api.branches.schemas import PausedTask
from wf_board_api.control import service
from wf_board_api.control.schemas import ControlOut, RunnerOut
from wf_board_api.gateway import build_command
from wf_board_api.schemas import COMMAND_RESPONSES, ERROR_RESPONSES
from wf_board_api.state import Actor, Db, Gateway, State

router = APIRouter(tags=["control"])


@router.get("/api/control", response_model=ControlOut, responses=ERROR_RESPONSES)
async def get_control(state: State, db: Db) -> ControlOut:
    """Which pauses are in effect (everything, projects, tasks: no new jobs there, and running jobs
    freeze before their next model turn) and the pushes waiting for their remote."""
    scopes = await branches.pause_state(state.js)
    return ControlOut(
        paused=await service.is_paused(state.js),
        paused_projects=sorted(scopes.projects),
        paused_tasks=[PausedTask(project=p, key=k) for p, k in sorted(scopes.tasks)],
        pending_pushes=await branches.list_pending_pushes(db),
    )


@router.post("/api/control/pause", responses=COMMAND_RESPONSES)
async def pause(actor: Actor, gateway: Gateway) -> dict[str, Any]:
    return await gateway.send(build_command(Pause, {}, actor=actor))


@router.post("/api/control/resume", responses=COMMAND_RESPONSES)
async def resume(actor: Actor, gateway: Gateway) -> dict[str, Any]:
    return await gateway.send(build_command(Resume, {}, actor=actor))


@router.get("/api/runners", response_model=list[RunnerOut], responses=ERROR_RESPONSES)
async def list_runners(state: State) -> list[RunnerOut]:
    """Agent runners with a live heartbeat, the stages they serve and the jobs they are on."""
    return await service.live_runners(state.js)
