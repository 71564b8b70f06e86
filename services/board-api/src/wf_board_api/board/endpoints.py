"""/api/board: what the kanban view draws in one request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from wf_common.fields import Slug

from wf_board_api.board import repository
from wf_board_api.board.schemas import BoardOut
from wf_board_api.board.service import BoardCache, board_json
from wf_board_api.control.service import is_paused
from wf_board_api.projects.service import require_project_id
from wf_board_api.schemas import ERROR_RESPONSES
from wf_board_api.state import Db, State

router = APIRouter(tags=["board"])


@router.get(
    "/api/board",
    response_model=BoardOut,
    responses={
        **ERROR_RESPONSES,
        304: {"description": "the board is unchanged since the ETag sent in If-None-Match; no body"},
    },
)
async def get_board(
    db: Db,
    state: State,
    project: Annotated[Slug | None, Query(description="project slug; all projects when left out")] = None,
    if_none_match: Annotated[
        str | None,
        Header(
            max_length=1000,
            description="the ETag of a board already held: 304 without a body while it is unchanged",
        ),
    ] = None,
) -> Response:
    """Columns in pipeline order (backlog … done), each with its tasks in creation order. An ETag comes
    with it; the board is built again only when a task or project was written since."""
    project_id = await require_project_id(db, project) if project else None
    stages = state.settings.stages()
    paused = await is_paused(state.js)
    cache: BoardCache = state.board_cache
    key = cache.key(project_id, await repository.version(db, project_id), stages, paused=paused)
    built = cache.get(key)
    if built is None:
        # Built by PostgreSQL in BoardOut's shape (wf_board_api.board.repository): not encoded again.
        built = cache.put(key, board_json(await repository.columns(db, project_id), stages, paused=paused))
    headers = {"ETag": built.etag, "Cache-Control": "no-cache"}  # a browser asks again every time
    if if_none_match is not None and built.etag in (t.strip() for t in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(built.body, media_type="application/json", headers=headers)
