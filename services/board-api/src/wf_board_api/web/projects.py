"""/ui/: the projects, a form to create one, and a link to the dashboard."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from wf_board_api.projects.service import list_projects
from wf_board_api.state import Db
from wf_board_api.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/ui/", response_class=HTMLResponse)
async def projects_page(request: Request, db: Db) -> HTMLResponse:
    return render(request, "projects.html", projects=await list_projects(db))
