"""A user's whole session in the browser: create a project, submit an idea, see the breakdown, edit a
proposed task and approve it, watch the card move across the columns live, open its live log while
it streams, pause and resume, comment on a line of the diff and see the comment reach the agent's
next prompt, approve the deploy, see the card reach done. Everything a model wrote shows as text.
Then the event stream is dropped while the card moves, and the board catches up on reconnect.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.e2e.test_pipeline import Stack, wait_for
from tests.fakes.ollama import ScriptedOllama
from tests.ui.conftest import shot
from tests.ui.model import BoardModel

CARD_TIMEOUT = 90_000


# Every text the T-002 card's activity indicator shows on the board, in order (installed before the
# page's own scripts, so no change is missed).
RECORD_ACTIVITY = """
window.__activities = [];
new MutationObserver(() => {
  const el = document.querySelector('#card-T-002 .activity');
  const text = el ? el.textContent : null;
  if (text && text !== window.__activities[window.__activities.length - 1]) window.__activities.push(text);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def column(page: Page, name: str) -> Locator:
    return page.get_by_role("region", name=name, exact=True)


def card(page: Page, key: str) -> Locator:
    return page.get_by_role("article", name=re.compile(rf"^{re.escape(key)}\b"))


def no_script_ran(page: Page) -> None:
    assert page.evaluate("window.__xss === undefined"), "a model-written script ran in the page"


def task_by_title(api: httpx.Client, title: str) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = api.get("/api/tasks", params={"project": "calc"}).json()
    return next((t for t in tasks if t["title"] == title), {})


def test_idea_to_done_in_the_browser(
    stack: Stack,
    page: Page,
    api: httpx.Client,
    model: tuple[ScriptedOllama, BoardModel],
    tmp_path: Path,
) -> None:
    _, responder = model
    # --- create a project --------------------------------------------------------------------------
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    page.get_by_label("Slug").fill("calc")
    page.get_by_label("Workspace").fill(str(tmp_path / "calc"))
    page.get_by_label("Test command").fill(f"{sys.executable} -m pytest -q")
    page.get_by_role("button", name="Create project").click()
    expect(page).to_have_url(re.compile(r"/ui/projects/calc$"))
    for stage in (
        "backlog",
        "pm",
        "dev",
        "qa",
        "sec",
        "docs",
        "deploy",
        "testing",
        "done",
        "needs-human",
        "failed",
    ):
        expect(column(page, stage)).to_be_visible()
    page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads

    # --- pause and resume ----------------------------------------------------------------------------
    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.locator("#paused-state")).to_have_text("Paused: everything")
    assert api.get("/api/control").json()["paused"] is True
    page.get_by_role("button", name="Resume", exact=True).click()
    expect(page.locator("#paused-state")).to_have_text("Running")
    assert api.get("/api/control").json()["paused"] is False

    # --- submit an idea; the breakdown appears live ----------------------------------------------------
    page.get_by_role("textbox", name="Idea").fill("Calculator with add")
    page.get_by_role("button", name="Submit idea").click()
    expect(card(page, "T-001")).to_be_visible(timeout=CARD_TIMEOUT)
    expect(column(page, "pm").get_by_role("article", name=re.compile("^T-001"))).to_contain_text(
        "awaiting approval", timeout=CARD_TIMEOUT
    )
    expect(card(page, "T-002")).to_be_visible()
    expect(page).to_have_title(re.compile(r"^\(1\) "))  # one thing waits for approval
    shot(page, "01-breakdown")

    # --- edit a proposed task, then approve the breakdown ----------------------------------------------
    card(page, "T-001").get_by_role("link").click()
    expect(page.get_by_role("heading", name="Proposed tasks")).to_be_visible()
    edit = page.get_by_role("form", name="Edit T-002")
    edit.get_by_label("Title").fill("Add function add (edited)")
    edit.get_by_label("Priority").fill("9")
    edit.get_by_role("button", name="Save T-002").click()
    expect(page.get_by_role("form", name="Edit T-002").get_by_label("Title")).to_have_value(
        "Add function add (edited)"
    )
    wait_for(
        lambda: task_by_title(api, "Add function add (edited)").get("priority") == 9, timeout=20, what="edit"
    )
    no_script_ran(page)
    page.get_by_role("button", name="Approve").click()
    wait_for(
        lambda: task_by_title(api, "Add function add (edited)").get("state") != "draft",
        timeout=20,
        what="approval",
    )
    # The page reloads itself once approved (no gate, no Approve button): let it, before leaving it.
    expect(page.get_by_role("button", name="Approve")).to_have_count(0, timeout=CARD_TIMEOUT)

    # --- the live log while DEV works ---------------------------------------------------------------
    page.goto(f"{stack.url}/ui/projects/calc/tasks/T-002")
    log = page.get_by_role("log", name="Agent output")
    expect(log).to_contain_text("write_file", timeout=CARD_TIMEOUT)
    expect(log).to_contain_text("<script>", timeout=CARD_TIMEOUT)  # shown as text
    no_script_ran(page)
    shot(page, "02-live-log")

    # --- watch the card move across the columns live ---------------------------------------------------
    page.add_init_script(RECORD_ACTIVITY)
    page.goto(f"{stack.url}/ui/projects/calc")
    page.evaluate("window.__sameDocument = true")
    expect(column(page, "deploy").get_by_role("article", name=re.compile("^T-002"))).to_be_visible(
        timeout=CARD_TIMEOUT
    )
    expect(card(page, "T-002")).to_contain_text("awaiting approval")
    assert page.evaluate("window.__sameDocument === true"), "the board reloaded instead of updating live"
    # The activity indicator followed the agents: thinking, running the test command, the gate.
    seen = set(page.evaluate("window.__activities"))
    assert {"thinking", "running a command", "waiting for approval"} <= seen, seen
    expect(card(page, "T-002").locator(".badge.tokens")).to_have_text(re.compile(r"^\d+ tokens$"))
    no_script_ran(page)
    shot(page, "03-at-deploy-gate")

    # --- the diff; a comment on a line reaches the agent's next prompt -----------------------------------
    card(page, "T-002").get_by_role("link").click()
    add_py = page.get_by_role("region", name="calc/add.py")
    expect(add_py).to_contain_text("return a + b")
    expect(add_py).to_contain_text('<img src=x onerror="window.__xss')  # as text, not an image
    assert page.locator("#diff img").count() == 0
    add_py.get_by_role("button", name="Comment on calc/add.py line 2").click()
    page.get_by_role("form", name="Comment on calc/add.py line 2").get_by_label("Comment").fill(
        "Check the types of a and b here"
    )
    page.get_by_role("button", name="Add comment").click()
    expect(page.get_by_text("Comment on calc/add.py:2 sent to the agent.")).to_be_visible()
    feedback = api.get("/api/projects/calc/tasks/T-002").json()["feedback"]
    assert [(f["file"], f["line"], f["text"]) for f in feedback] == [
        ("calc/add.py", 2, "Check the types of a and b here")
    ]
    shot(page, "04-diff-comment")

    # --- feedback in the textbox, then approve the deploy -----------------------------------------------
    page.get_by_role("textbox", name="Feedback", exact=True).fill("Keep the module small")
    page.get_by_role("button", name="Send feedback").click()
    wait_for(
        lambda: len(api.get("/api/projects/calc/tasks/T-002").json()["feedback"]) == 2,
        timeout=20,
        what="feedback",
    )
    page.get_by_role("button", name="Approve").click()
    wait_for(
        lambda: task_by_title(api, "Add function add (edited)").get("state") == "done",
        timeout=90,
        what="done",
    )
    testing = responder.prompts_of("testing")
    assert testing, "TESTING never ran"
    assert "on calc/add.py:2: Check the types of a and b here" in testing[-1]
    assert "Keep the module small" in testing[-1]

    # --- the card reaches done, live ------------------------------------------------------------------
    page.goto(f"{stack.url}/ui/projects/calc")
    expect(column(page, "done").get_by_role("article", name=re.compile("^T-002"))).to_be_visible()
    expect(page.locator('[data-count="completed"]')).to_contain_text("2 completed", timeout=30_000)
    no_script_ran(page)
    shot(page, "05-done")
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors  # type: ignore[attr-defined]
