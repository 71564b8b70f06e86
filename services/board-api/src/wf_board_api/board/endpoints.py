"""/api/board: what the kanban view draws in one request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from wf_common.fields import Slug

from wf_board_api.board.schemas import BoardOut
from wf_board_api.board.service import build_board
from wf_board_api.control.service import is_paused
from wf_board_api.schemas import ERROR_RESPONSES
from wf_board_api.state import Db, State
from wf_board_api.tasks.service import list_tasks

router = APIRouter(tags=["board"])


@router.get("/api/board", response_model=BoardOut, responses=ERROR_RESPONSES)
async def get_board(
    db: Db,
    state: State,
    project: Annotated[Slug | None, Query(description="project slug; all projects when left out")] = None,
) -> BoardOut:
    """Columns in pipeline order (backlog … done), each with its tasks in creation order."""
    tasks = await list_tasks(db, project=project, stage=None, state=None, key=None)
    return build_board(tasks, state.settings.stages(), paused=await is_paused(state.js))
