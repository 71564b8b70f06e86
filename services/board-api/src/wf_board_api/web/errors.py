"""Errors on /ui/ pages are pages too (the API's JSON errors stay JSON)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from wf_board_api.errors import ApiError
from wf_board_api.web.templating import render

TITLES = {404: "Not found", 422: "Invalid request", 503: "Not available"}


def page_error(request: Request, err: ApiError) -> HTMLResponse:
    return render(
        request,
        "error.html",
        status_code=err.status_code,
        title=TITLES.get(err.status_code, "Error"),
        message=err.message,
    )
