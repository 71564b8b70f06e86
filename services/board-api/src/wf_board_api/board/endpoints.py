"""/api/board: what the kanban view draws in one request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from wf_common.fields import Slug

from wf_board_api.board import repository
from wf_board_api.board.schemas import BoardOut
from wf_board_api.board.service import board_json
from wf_board_api.control.service import is_paused
from wf_board_api.projects.service import require_project_id
from wf_board_api.schemas import ERROR_RESPONSES
from wf_board_api.state import Db, State

router = APIRouter(tags=["board"])


@router.get("/api/board", response_model=BoardOut, responses=ERROR_RESPONSES)
async def get_board(
    db: Db,
    state: State,
    project: Annotated[Slug | None, Query(description="project slug; all projects when left out")] = None,
) -> Response:
    """Columns in pipeline order (backlog … done), each with its tasks in creation order."""
    project_id = await require_project_id(db, project) if project else None
    columns = await repository.columns(db, project_id)
    body = board_json(columns, state.settings.stages(), paused=await is_paused(state.js))
    # Built by PostgreSQL in BoardOut's shape (wf_board_api.board.repository): not encoded again here.
    return Response(body, media_type="application/json")
