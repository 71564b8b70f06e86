"""/ui/projects/<slug>: the kanban board of one project, updated live from the event stream."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from wf_board_api.control.service import read_pauses
from wf_board_api.errors import ApiError
from wf_board_api.projects.service import require_project
from wf_board_api.state import Db, State
from wf_board_api.tasks.service import list_tasks
from wf_board_api.web import views
from wf_board_api.web.errors import page_error
from wf_board_api.web.templating import render

router = APIRouter(include_in_schema=False)


async def _board_page_impl(request: Request, slug: str, db: Db, state: State) -> HTMLResponse:
    project = await require_project(db, slug)
    # Read the stream position first: every event after it is applied live, none is missed.
    after = await views.last_event_id(state.js)
    snapshots = await list_tasks(db, project=slug, stage=None, state=None, key=None)
    board = views.board_view(
        slug,
        snapshots,
        state.settings.stages(),
        state.settings.workflow,
        await views.badges_for(db, slug),
        pauses=await read_pauses(state.js),
        last_event_id=after,
    )
    return render(request, "board.html", project=project, board=board)


@router.get("/ui/projects/{slug}", response_class=HTMLResponse)
async def board_page(request: Request, slug: str, db: Db, state: State) -> HTMLResponse:
    try:
        return await _board_page_impl(request, slug, db, state)
    except ApiError as err:
        return page_error(request, err)
