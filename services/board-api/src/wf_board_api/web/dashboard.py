"""/ui/dashboard: agent performance, tokens, throughput and what runs now (from GET /api/stats).

The page is a shell; its ES module reads /api/stats and builds the tables with textContent, so it
shows whatever the endpoint returns and says so plainly when there is nothing (or no endpoint yet).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from wf_board_api.projects.service import list_projects
from wf_board_api.state import Db
from wf_board_api.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/ui/dashboard", response_class=HTMLResponse)
async def dashboard_page(request: Request, db: Db) -> HTMLResponse:
    return render(request, "dashboard.html", projects=await list_projects(db))
