"""The card page's Retry and Kill buttons, in the browser: a task that QA sent back and that then
stopped for a human shows its open bug; killing it and retrying the task are one click each."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.test_pipeline import Stack, wait_for
from tests.ui.conftest import shot, start_calc
from tests.ui.test_board_flow import CARD_TIMEOUT

STOPPED = {"needs_human", "failed"}


def task(api: httpx.Client, key: str) -> dict[str, object]:
    reply = api.get(f"/api/projects/calc/tasks/{key}")
    assert reply.status_code == 200, reply.text
    data: dict[str, object] = reply.json()
    return data


def runs(api: httpx.Client, key: str) -> int:
    executions = task(api, key)["executions"]
    assert isinstance(executions, list)
    return len(executions)


def test_kill_a_bug_and_retry_the_task_from_the_card(
    stack: Stack, page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    # The project's tests always fail: QA files a bug, DEV's rework changes nothing and the task stops.
    start_calc(api, tmp_path, test_command=f"{sys.executable} -c 'raise SystemExit(3)'")
    wait_for(lambda: task(api, "T-001")["state"] == "awaiting_approval", timeout=60, what="the breakdown")
    assert api.post("/api/projects/calc/tasks/T-001/approve").status_code == 200
    wait_for(lambda: task(api, "T-002")["state"] in STOPPED, timeout=240, what="T-002 to stop for a human")
    bugs = api.get("/api/bugs", params={"project": "calc", "task": "T-002"}).json()
    assert bugs, "QA's failing run filed no bug"
    bug = bugs[0]["key"]
    assert bugs[0]["status"] == "open"

    page.goto(f"{stack.url}/ui/projects/calc/tasks/T-002")
    kill = page.get_by_role("button", name=f"Kill {bug}")
    expect(kill).to_be_visible(timeout=CARD_TIMEOUT)
    shot(page, "50-stopped-with-open-bug")
    kill.click()
    expect(page.get_by_role("button", name=f"Kill {bug}")).to_have_count(0, timeout=CARD_TIMEOUT)
    killed = api.get(
        "/api/bugs", params={"project": "calc", "task": "T-002", "include_killed": "true"}
    ).json()
    assert {b["key"]: b["status"] for b in killed}[bug] == "killed"

    before = runs(api, "T-002")
    page.get_by_role("button", name="Retry").click()
    wait_for(lambda: runs(api, "T-002") > before, timeout=120, what="the retried task to run again")
    shot(page, "51-retried")
