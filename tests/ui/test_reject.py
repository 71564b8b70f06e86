"""Rejecting a gate from the card page, by keyboard: the reason reaches the agent's next prompt."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page

from tests.e2e.test_pipeline import Stack, wait_for
from tests.fakes.ollama import ScriptedOllama
from tests.ui.conftest import shot, start_calc
from tests.ui.model import BoardModel
from tests.ui.test_pause_scopes import states

REASON = "Split it into smaller tasks"


def test_reject_with_a_reason_reaches_the_agent(
    stack: Stack, page: Page, api: httpx.Client, model: tuple[ScriptedOllama, BoardModel], tmp_path: Path
) -> None:
    _, responder = model
    start_calc(api, tmp_path)
    wait_for(lambda: "awaiting_approval" in states(api, "calc"), timeout=60, what="the breakdown")
    asked = len(responder.prompts_of("pm"))

    page.goto(f"{stack.url}/ui/projects/calc/tasks/T-001")
    reject = page.get_by_role("form", name="Reject")
    reason = reject.get_by_label("Reason")
    reason.focus()
    page.keyboard.type(REASON)
    shot(page, "40-reject-with-reason")
    page.keyboard.press("Enter")  # submits the form, as the Reject button does
    wait_for(lambda: len(responder.prompts_of("pm")) > asked, timeout=60, what="the PM to run again")
    assert REASON in responder.prompts_of("pm")[-1]
