"""Pieces of pages that the ES modules and htmx fetch: one card, one task's diff."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from wf_board_api.control.service import read_pauses
from wf_board_api.diff.endpoints import load_diff
from wf_board_api.state import Db, State
from wf_board_api.tasks.service import list_tasks, normalize_key
from wf_board_api.web import views
from wf_board_api.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/ui/projects/{slug}/tasks/{key}/card", response_class=HTMLResponse)
async def card_fragment(request: Request, slug: str, key: str, db: Db, state: State) -> HTMLResponse:
    """The card as the board shows it now; 204 when it is no longer shown (cancelled)."""
    key = normalize_key(key)
    found = await list_tasks(db, project=slug, stage=None, state=None, key=key)
    task = found[0] if found else None
    if task is None or task.state in views.HIDDEN_STATES:
        return HTMLResponse("", status_code=204)
    badges = await views.badges_for(db, slug, [key])
    card = views.make_card(
        task, state.settings.workflow, badges.get(key, views.Badges()), pauses=await read_pauses(state.js)
    )
    return render(request, "parts/card.html", card=card)


@router.get("/ui/projects/{slug}/tasks/{key}/diff", response_class=HTMLResponse)
async def diff_fragment(request: Request, slug: str, key: str, db: Db) -> HTMLResponse:
    diff = await load_diff(db, slug, key)
    return render(request, "parts/diff.html", diff=diff, key=normalize_key(key))
