"""The board and the card page say which pause is in effect (everything, the project, a task), live."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.test_pipeline import Stack, wait_for
from tests.ui.conftest import shot
from tests.ui.test_board_flow import CARD_TIMEOUT, card


def test_project_and_task_pauses_are_shown_live(
    stack: Stack, page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    created = api.post(
        "/api/projects",
        json={"slug": "calc", "workspace": str(tmp_path / "calc"), "test_command": f"{sys.executable} -V"},
    )
    assert created.status_code == 201, created.text
    assert api.post("/api/projects/calc/ideas", json={"text": "Calculator with add"}).status_code == 201
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
