"""`GET /api/stats`: per role, task and model: executions, time, pass rate, tokens and money; stage
moves per hour over the last day; what runs now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from wf_board_api.schemas import ERROR_RESPONSES
from wf_board_api.state import Db
from wf_board_api.stats import service
from wf_board_api.stats.schemas import Stats

router = APIRouter(tags=["stats"])


@router.get("/api/stats", response_model=Stats, responses=ERROR_RESPONSES)
async def get_stats(
    db: Db, project: Annotated[str | None, Query(description="project slug; all projects if absent")] = None
) -> Stats:
    return await service.stats(db, project=project)
