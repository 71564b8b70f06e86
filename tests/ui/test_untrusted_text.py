"""Model- and user-written text is shown as text on every view, and none of it runs.

The scripted model puts `<script>`, `<img src=x onerror=…>` and a `javascript:` link into a task's
title and description, the agents' output, the code (so the diff) and a doc; the test adds a project
name and a line comment of the same kind. Each page (board, card, log, diff, feedback, dashboard) is
then opened in Chromium and checked: the payload is visible as literal text where the page shows it,
no element came out of it, no script ran, and the Content-Security-Policy had nothing to block
(a blocked inline script would mean one got into the page).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.test_pipeline import Stack, wait_for
from tests.fakes.ollama import Reply, ScriptedOllama
from tests.ui.conftest import api_token, shot
from tests.ui.model import BREAKDOWN, XSS, BoardModel
from tests.ui.test_board_flow import CARD_TIMEOUT, card

TITLE = f"Add {XSS}"
VISIBLE = '<script>window.__xss = "script"</script>'
# Anything the payload would have become, had it been parsed as HTML.
INJECTED = 'img[src="x"], a[href^="javascript:"], script:not([src]), [onerror]'
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.violatedDirective));
"""


class HostileModel(BoardModel):
    """The browser tests' model, with the payload in the proposed task's title as well."""

    def __call__(self, request: dict[str, Any]) -> Reply:
        reply = super().__call__(request)
        if self.prompts and self.prompts[-1][0] == "pm":
            breakdown = json.loads(json.dumps(BREAKDOWN))
            breakdown["tasks"][0]["title"] = TITLE
            return Reply.json(breakdown)
        return reply


@pytest.fixture
def model() -> Iterator[tuple[ScriptedOllama, BoardModel]]:
    responder = HostileModel(dev_delay=0.2)
    with ScriptedOllama(responder) as server:
        yield server, responder


@pytest.fixture
def hostile_page(context: BrowserContext, stack: Stack) -> Page:
    page = context.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    token = api_token(stack)
    page.goto(f"{stack.url}/ui/?token={token}" if token else f"{stack.url}/ui/")
    return page


def nothing_ran(page: Page, view: str) -> None:
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__xss === undefined"), f"a model-written script ran on the {view}"
    assert page.locator(INJECTED).count() == 0, f"model-written HTML became elements on the {view}"
    assert page.evaluate("window.__violations") == [], f"the CSP blocked something on the {view}"


def the_task(api: httpx.Client) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = api.get("/api/tasks", params={"project": "calc"}).json()
    return next((t for t in tasks if t["title"] == TITLE), {})


def test_model_written_text_is_shown_as_text_everywhere(
    stack: Stack, hostile_page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    page = hostile_page
    created = api.post(
        "/api/projects",
        json={
            "slug": "calc",
            "name": f"Calc {XSS}",
            "workspace": str(tmp_path / "calc"),
            "test_command": f"{sys.executable} -m pytest -q",
        },
    )
    assert created.status_code == 201, created.text
    assert api.post("/api/projects/calc/ideas", json={"text": f"Calculator {XSS}"}).status_code == 201
    wait_for(lambda: the_task(api).get("state") == "draft", timeout=60, what="the breakdown")
    key = the_task(api)["key"]
    idea = next(t for t in api.get("/api/tasks", params={"project": "calc"}).json() if t["key"] != key)
    assert api.post(f"/api/projects/calc/tasks/{idea['key']}/approve").status_code == 200
    # Past DEV: its output, its code (the diff) and its summary are all written.
    wait_for(
        lambda: the_task(api).get("stage") in ("qa", "sec", "docs", "deploy", "testing", "done"),
        timeout=120,
        what="the task to get past dev",
    )
    comment = {"text": f"Look here {XSS}", "file": "calc/add.py", "line": 2}
    assert api.post(f"/api/projects/calc/tasks/{key}/feedback", json=comment).status_code == 201

    # The board: the card's title and the project's name.
    page.goto(f"{stack.url}/ui/projects/calc")
    expect(card(page, key)).to_contain_text(VISIBLE, timeout=CARD_TIMEOUT)
    expect(page.get_by_role("heading", level=1)).to_contain_text(VISIBLE)
    nothing_ran(page, "board")
    shot(page, "20-untrusted-board")

    # The card: title, description, live log, diff, feedback.
    page.goto(f"{stack.url}/ui/projects/calc/tasks/{key}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(VISIBLE)
    expect(page.locator("pre", has_text=f"calc.add(a, b) returns the sum. {XSS}")).to_be_visible()
    expect(page.locator('textarea[name="description"]').first).to_have_value(
        f"calc.add(a, b) returns the sum. {XSS}"
    )
    expect(page.get_by_role("log", name="Agent output")).to_contain_text(VISIBLE, timeout=CARD_TIMEOUT)
    add_py = page.get_by_role("region", name="calc/add.py")
    expect(add_py).to_contain_text(f"# {XSS}")
    expect(page.get_by_text(f"Look here {XSS}")).to_be_visible()
    nothing_ran(page, "card page")
    shot(page, "21-untrusted-card")

    # The dashboard: the task's title in the tokens-per-task table, the project in the filter.
    page.goto(f"{stack.url}/ui/dashboard")
    expect(page.get_by_role("region", name="Tokens per task")).to_contain_text(VISIBLE, timeout=CARD_TIMEOUT)
    expect(page.get_by_label("Project").locator("option", has_text=VISIBLE)).to_have_count(1)
    nothing_ran(page, "dashboard")
    shot(page, "22-untrusted-dashboard")

    # The projects list.
    page.goto(f"{stack.url}/ui/")
    expect(page.get_by_text(f"Calc {XSS}")).to_be_visible()
    nothing_ran(page, "projects list")
