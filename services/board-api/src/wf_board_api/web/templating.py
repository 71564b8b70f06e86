"""Find the `ui/` folder and render its templates: autoescape on, a strict CSP on every page.

The templates ship in the repository's `ui/` folder (vendored JS included). `WF_BOARD_UI_DIR` says
where it is (the container image sets it); otherwise it is looked for above this package, which is
where it is in a checkout (`make run`) and in the image (`/app/ui`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

# No inline script or style anywhere: everything the page runs or styles comes from /ui/static.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
CSRF_COOKIE = "wf_csrf"


class UiNotFoundError(RuntimeError):
    pass


@functools.cache
def ui_dir() -> Path:
    configured = os.environ.get("WF_BOARD_UI_DIR")
    if configured:
        path = Path(configured)
        if not (path / "templates").is_dir():
            raise UiNotFoundError(f"WF_BOARD_UI_DIR={configured} has no templates/ folder")
        return path
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "ui"
        if (candidate / "templates").is_dir() and (candidate / "static").is_dir():
            return candidate
    raise UiNotFoundError(
        "cannot find the board's ui/ folder above the wf_board_api package; set WF_BOARD_UI_DIR"
    )


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(ui_dir() / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A full page or a fragment, with the CSRF value for the page's ES module to send back."""
    html = (
        environment()
        .get_template(template)
        .render(csrf_token=request.cookies.get(CSRF_COOKIE, ""), path=request.url.path, **context)
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"},
    )
