"""Everything works with the keyboard, in the browser: Tab reaches a gate's Approve, Reject and
Feedback on the card page and Enter approves; on the board a card moves to another column through
its "Move <key>…" button and the dialog it opens (the same move command as a drag), and the
orchestrator's refusal of a forbidden move is announced."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.e2e.test_pipeline import Stack, wait_for
from tests.ui.conftest import shot, start_calc
from tests.ui.test_board_flow import CARD_TIMEOUT, card, column

STOPPED = {"needs_human", "failed"}
# What the focused element is called, as a screen reader would say it: a control's label or text.
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return "";
  const label = el.labels && el.labels.length ? el.labels[0].textContent : el.textContent;
  return `${el.tagName.toLowerCase()}:${(label || "").trim()}`;
}"""


def task(api: httpx.Client, key: str) -> dict[str, Any]:
    reply = api.get(f"/api/projects/calc/tasks/{key}")
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data


def tab_through(page: Page, last: str, limit: int = 60) -> list[str]:
    """Press Tab from the top of the page until `last` has focus; what got focus, in order."""
    page.locator("body").focus()
    seen: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        seen.append(page.evaluate(FOCUSED))
        if seen[-1] == last:
            return seen
    raise AssertionError(f"Tab never reached {last!r}; it went through {seen}")


def choose(page: Page, select: Locator, value: str) -> None:
    """Pick an option of the focused list with the arrow keys, as a keyboard user does."""
    options: list[str] = select.evaluate("s => [...s.options].map(o => o.value)")
    here = options.index(select.input_value())
    key = "ArrowDown" if options.index(value) > here else "ArrowUp"
    for _ in range(abs(options.index(value) - here)):
        page.keyboard.press(key)
    expect(select).to_have_value(value)


def move_by_keyboard(page: Page, key: str, to: str) -> None:
    """From the card's title link: Tab to its Move button, Enter opens the dialog, arrows pick the
    column, Tab to Move, Enter."""
    card(page, key).get_by_role("link").focus()
    page.keyboard.press("Tab")
    button = card(page, key).get_by_role("button", name=f"Move {key}")
    expect(button).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=f"Move {key}")
    expect(dialog).to_be_visible()
    where = dialog.get_by_label("Move to")
    expect(where).to_be_focused()
    choose(page, where, to)
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Move", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()


def test_keyboard_only_approve_and_move_a_card(
    stack: Stack, page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    # The project's tests always fail, so the task stops for a human: a card that may be moved.
    start_calc(api, tmp_path, test_command=f"{sys.executable} -c 'raise SystemExit(3)'")
    wait_for(lambda: task(api, "T-001")["state"] == "awaiting_approval", timeout=60, what="the breakdown")

    # --- the card page: Tab reaches the gate's controls, Enter approves ---------------------------
    page.goto(f"{stack.url}/ui/projects/calc/tasks/T-001")
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    order = tab_through(page, "button:Send feedback")
    wanted = ["button:Approve", "input:Reason", "button:Reject", "textarea:Feedback", "button:Send feedback"]
    assert [f for f in order if f in wanted] == wanted, order
    shot(page, "60-keyboard-task-page")
    page.get_by_role("button", name="Approve").focus()  # back to it, then the key does it
    page.keyboard.press("Enter")
    wait_for(lambda: task(api, "T-001")["state"] != "awaiting_approval", timeout=60, what="the approval")

    wait_for(lambda: task(api, "T-002")["state"] in STOPPED, timeout=240, what="T-002 to stop for a human")
    stage = task(api, "T-002")["stage"]
    stopped_in = "needs-human" if task(api, "T-002")["state"] == "needs_human" else "failed"
    # Held: once moved back into its stage the task waits there instead of running off at once.
    assert api.post("/api/projects/calc/pause").status_code == 200

    page.goto(f"{stack.url}/ui/projects/calc")
    on_board = column(page, stopped_in).get_by_role("article", name=re.compile("^T-002"))
    expect(on_board).to_be_visible(timeout=CARD_TIMEOUT)

    # --- a forbidden move: refused by the orchestrator, announced, the card stays ----------------
    move_by_keyboard(page, "T-002", "done")
    expect(page.get_by_role("alert")).to_contain_text("cannot be moved to done by hand")
    expect(column(page, stopped_in).get_by_role("article", name=re.compile("^T-002"))).to_be_visible()
    expect(card(page, "T-002").get_by_role("button", name="Move T-002")).to_be_focused()  # focus kept
    shot(page, "61-keyboard-move-refused")
    assert task(api, "T-002")["state"] in STOPPED

    # --- an allowed move: back into its stage, queued there again --------------------------------
    move_by_keyboard(page, "T-002", stage)
    expect(page.get_by_role("alert")).to_contain_text(f"T-002 moved to {stage}.")
    expect(column(page, stage).get_by_role("article", name=re.compile("^T-002"))).to_be_visible(
        timeout=CARD_TIMEOUT
    )
    expect(card(page, "T-002").get_by_role("button", name="Move T-002")).to_be_focused()
    expect(card(page, "T-002")).to_be_in_viewport()  # the view followed the card to its column
    moved = task(api, "T-002")
    assert (moved["stage"], moved["state"]) == (stage, "queued")
    shot(page, "62-keyboard-move-done")
