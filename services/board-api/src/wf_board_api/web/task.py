"""/ui/projects/<slug>/tasks/<key>: one card in full, with its controls, live output and diff."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from wf_board_api.control.service import is_paused
from wf_board_api.errors import ApiError
from wf_board_api.projects.service import require_project
from wf_board_api.state import Db, State
from wf_board_api.tasks.service import list_tasks, task_detail
from wf_board_api.web import views
from wf_board_api.web.errors import page_error
from wf_board_api.web.templating import render

router = APIRouter(include_in_schema=False)


async def _task_page_impl(request: Request, slug: str, key: str, db: Db, state: State) -> HTMLResponse:
    project = await require_project(db, slug)
    after = await views.last_event_id(state.js)
    detail = await task_detail(db, slug, key)
    children = [
        t
        for t in await list_tasks(db, project=slug, stage=None, state=None, key=None)
        if t.parent == detail.key
    ]
    stage = state.settings.workflow.pipeline.stage(detail.stage)
    at_gate = detail.state == "awaiting_approval"
    return render(
        request,
        "task.html",
        project=project,
        task=detail,
        children=children,
        agent=stage.agent if stage else None,
        at_gate=at_gate,
        pm_gate=at_gate and bool(children) and any(c.state == "draft" for c in children),
        paused=await is_paused(state.js),
        last_event_id=after,
        columns=views.columns_for(state.settings.stages()),
        latest_execution=detail.executions[-1].id if detail.executions else None,
    )


@router.get("/ui/projects/{slug}/tasks/{key}", response_class=HTMLResponse)
async def task_page(request: Request, slug: str, key: str, db: Db, state: State) -> HTMLResponse:
    try:
        return await _task_page_impl(request, slug, key, db, state)
    except ApiError as err:
        return page_error(request, err)
