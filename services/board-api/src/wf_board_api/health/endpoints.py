"""/health: 200 only when the board can do everything it offers, else 503 naming what is missing."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from wf_board_api.health.schemas import HealthOut
from wf_board_api.health.service import check
from wf_board_api.state import State

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health(state: State) -> JSONResponse:
    result = await check(state)
    return JSONResponse(
        result.model_dump(mode="json", exclude_none=True), status_code=200 if result.status == "ok" else 503
    )
