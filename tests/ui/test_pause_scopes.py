"""The board and the card page say which pause is in effect (everything, the project, a task), live."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.e2e.test_pipeline import Stack, wait_for
from tests.ui.conftest import shot, start_calc
from tests.ui.test_board_flow import CARD_TIMEOUT, card


def test_project_and_task_pauses_are_shown_live(
    stack: Stack, page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    start_calc(api, tmp_path)
    wait_for(lambda: api.get("/api/tasks", params={"project": "calc"}).json(), timeout=60, what="the idea")
    page.goto(f"{stack.url}/ui/projects/calc")
    expect(card(page, "T-001")).to_be_visible(timeout=CARD_TIMEOUT)
    state = page.locator("#paused-state")
    expect(state).to_have_text("Running")

    # The project's pause, then the global one over it, each shown without a reload.
    assert api.post("/api/projects/calc/pause").status_code == 200
    expect(state).to_have_text("Paused: this project", timeout=CARD_TIMEOUT)
    assert api.post("/api/control/pause").status_code == 200
    expect(state).to_have_text("Paused: everything", timeout=CARD_TIMEOUT)
    assert api.post("/api/control/resume").status_code == 200
    expect(state).to_have_text("Paused: this project", timeout=CARD_TIMEOUT)
    assert api.post("/api/projects/calc/resume").status_code == 200
    expect(state).to_have_text("Running", timeout=CARD_TIMEOUT)

    # A task's pause: the board names the task, its card page says so, another project is untouched.
    assert api.post("/api/projects/calc/tasks/T-001/pause").status_code == 200
    expect(state).to_have_text("Paused: task T-001", timeout=CARD_TIMEOUT)
    shot(page, "30-task-paused-board")
    page.goto(f"{stack.url}/ui/projects/calc/tasks/T-001")
    expect(page.locator("#paused-state")).to_have_text("Paused: this task", timeout=CARD_TIMEOUT)
    assert api.post("/api/projects/calc/tasks/T-001/resume").status_code == 200
    expect(page.locator("#paused-state")).to_have_text("Running", timeout=CARD_TIMEOUT)
    assert api.get("/api/control").json()["paused_tasks"] == []


def states(api: httpx.Client, project: str) -> set[str]:
    return {t["state"] for t in api.get("/api/tasks", params={"project": project}).json()}


def activity(page: Page, key: str) -> Locator:
    return card(page, key).locator(".activity")


def test_cards_show_project_and_task_pauses(
    stack: Stack, page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    """A queued card held by its project's pause, then by its own, says so live; resuming clears it."""
    start_calc(api, tmp_path)
    wait_for(
        lambda: any(
            t["state"] == "awaiting_approval"
            for t in api.get("/api/tasks", params={"project": "calc"}).json()
        ),
        timeout=60,
        what="the breakdown waiting for approval",
    )
    page.goto(f"{stack.url}/ui/projects/calc")
    expect(card(page, "T-002")).to_be_visible(timeout=CARD_TIMEOUT)

    # The project is paused before the breakdown is approved: its task is queued and goes nowhere.
    assert api.post("/api/projects/calc/pause").status_code == 200
    expect(page.locator("#paused-state")).to_have_text("Paused: this project", timeout=CARD_TIMEOUT)
    assert api.post("/api/projects/calc/tasks/T-001/approve").status_code == 200
    expect(activity(page, "T-002")).to_have_text("paused (project)", timeout=CARD_TIMEOUT)
    expect(card(page, "T-002")).to_have_attribute("data-state", "queued")
    shot(page, "31-card-paused-by-project")

    # The task's own pause outlasts the project's: the card now names the task's pause.
    assert api.post("/api/projects/calc/tasks/T-002/pause").status_code == 200
    assert api.post("/api/projects/calc/resume").status_code == 200
    expect(page.locator("#paused-state")).to_have_text("Paused: task T-002", timeout=CARD_TIMEOUT)
    expect(activity(page, "T-002")).to_have_text("paused (task)", timeout=CARD_TIMEOUT)
    # A reload renders the same from the server.
    page.reload()
    expect(activity(page, "T-002")).to_have_text("paused (task)", timeout=CARD_TIMEOUT)
    shot(page, "32-card-paused-by-task")

    # Resumed: the card no longer says paused and the work goes on.
    assert api.post("/api/projects/calc/tasks/T-002/resume").status_code == 200
    expect(activity(page, "T-002")).not_to_have_text(re.compile("paused"), timeout=CARD_TIMEOUT)
    wait_for(
        lambda: api.get("/api/projects/calc/tasks/T-002").json()["state"] != "queued",
        timeout=60,
        what="T-002 to leave the queue once resumed",
    )
