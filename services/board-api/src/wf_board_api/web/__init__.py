"""The board in the browser: server-rendered pages under /ui/ (Jinja2 + htmx + small ES modules).

One route module per page (`projects`, `board`, `task`, `dashboard`), `fragments` for the pieces
htmx and the ES modules swap in, `views` shapes the data the templates show (templates never query),
`templating` finds the `ui/` folder and renders with autoescape and a strict CSP.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from wf_board_api.web import board, dashboard, fragments, projects, task
from wf_board_api.web.templating import ui_dir

root_router = APIRouter(include_in_schema=False)


@root_router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=303)


def install(app: FastAPI) -> None:
    """Mount the static files and the page routes on `app`."""
    app.mount("/ui/static", StaticFiles(directory=ui_dir() / "static"), name="ui-static")
    for module in (projects, board, task, dashboard, fragments):
        app.include_router(module.router)
    app.include_router(root_router)
