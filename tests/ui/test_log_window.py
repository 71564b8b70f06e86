"""The card page's log window stays bounded and loads older lines on demand, by keyboard; the card's
activity indicator names what the agent is doing, on the board and on the card page.

The board API runs as its own process (as `wf start` runs it) on the test's NATS and PostgreSQL; the
test feeds it what the runners publish (agent.output, execution.waiting, execution.paused) on the real
event stream, so every state can be shown without waiting for a model to get there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.ext.asyncio import create_async_engine
from wf_cli.embedded import NatsServer, free_port
from wf_common import bus
from wf_common.events import AgentOutput, AgentOutputKind, Event, ExecutionPaused, ExecutionWaiting
from wf_orchestrator.migrations import migrate

from tests.board import rows

T = TypeVar("T")
TOKEN = "ui-log-window-token"
HISTORY = 100  # lines before the page opens
LINES = 700  # in all: more than the window's 500 (ui/static/js/log.js MAX_LINES)
WINDOW = 500
TIMEOUT = 30_000


def _off_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a thread of its own (Playwright's sync API owns this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _seed(db_url: str) -> int:
    """Project calc, its running task T-001 in dev, and that task's execution (its id)."""
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            pid = await rows.project(conn, "calc")
            tid = await rows.task(conn, pid, "T-001", title="Add function add", state="running")
            return await rows.execution(conn, tid, await rows.agent(conn, "dev"), "dev", 1, status="running")
    finally:
        await engine.dispose()


async def _publish(nats_url: str, events: list[Event]) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for event in events:
            await bus.publish(js, event.subject(), event)
    finally:
        await nc.close()


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """A database of this test alone at the newest migration (migrated off the browser's loop)."""
    _off_loop(migrate(empty_database_url))
    return empty_database_url


@pytest.fixture
def board_url(nats_server: NatsServer, database_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port("127.0.0.1")
    env = {
        **os.environ,
        "WF_NATS_URL": nats_server.url,
        "WF_DATABASE_URL": database_url,
        "WF_BOARD_PORT": str(port),
        "WF_API_TOKEN": TOKEN,
    }
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "board-api.log").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "wf_board_api"], env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                headers = {"Authorization": f"Bearer {TOKEN}"}
                if httpx.get(f"{url}/ui/", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (tmp_path / "board-api.log").read_text()
                raise AssertionError(f"the board API did not start:\n{log}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
def signed_in(browser: Browser, board_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{board_url}/ui/?token={TOKEN}")  # the session cookie, got the way a user gets it
    yield page
    context.close()


def output(execution_id: int, kind: AgentOutputKind, text: str) -> AgentOutput:
    return AgentOutput(
        project="calc", task_key="T-001", execution_id=execution_id, stage="dev", kind=kind, text=text
    )


def numbered_lines(execution_id: int, first: int, end: int) -> list[Event]:
    return [output(execution_id, "log", f"line {i:04d}") for i in range(first, end)]


def test_log_window_is_bounded_and_older_lines_load_by_keyboard(
    signed_in: Page, board_url: str, nats_server: NatsServer, database_url: str
) -> None:
    page = signed_in
    eid = _off_loop(_seed(database_url))
    _off_loop(_publish(nats_server.url, numbered_lines(eid, 0, HISTORY)))

    page.goto(f"{board_url}/ui/projects/calc/tasks/T-001")
    log = page.get_by_role("log", name="Agent output")
    lines = log.locator(".line")
    expect(lines).to_have_count(HISTORY, timeout=TIMEOUT)  # what was said before the page opened
    # Then the agent streams on, far past the window.
    _off_loop(_publish(nats_server.url, numbered_lines(eid, HISTORY, LINES)))
    expect(log).to_contain_text(f"line {LINES - 1:04d}", timeout=TIMEOUT)
    expect(lines).to_have_count(WINDOW)  # the newest only: the window never holds more
    expect(log).not_to_contain_text("line 0000")
    older = page.get_by_role("button", name="Load older lines")
    expect(older).to_be_visible()

    # Keyboard only: from the log region one step back is the button; Enter loads the older lines.
    log.focus()
    page.keyboard.press("Shift+Tab")
    expect(older).to_be_focused()
    page.keyboard.press("Enter")
    expect(log).to_contain_text("line 0000", timeout=TIMEOUT)
    expect(lines).to_have_count(WINDOW)
    expect(lines.first).to_contain_text("line 0000")


def test_activity_indicator_follows_the_agent_on_the_board_and_the_card(
    signed_in: Page, board_url: str, nats_server: NatsServer, database_url: str
) -> None:
    page = signed_in
    eid = _off_loop(_seed(database_url))
    waiting = ExecutionWaiting(
        project="calc",
        task_key="T-001",
        execution_id=eid,
        reason="the model server could not be reached",
        url="http://127.0.0.1:11434",
        retry=1,
        retry_in_seconds=5.0,
    )
    paused = ExecutionPaused(
        project="calc", task_key="T-001", execution_id=eid, stage="dev", runner_id="r1", scope="task"
    )
    steps: list[tuple[Event, str]] = [
        (output(eid, "token", "Let me think"), "thinking"),
        (output(eid, "command_output", "collected 1 item"), "running a command"),
        (waiting, "waiting for the model server"),
        (paused, "paused"),
    ]

    page.goto(f"{board_url}/ui/projects/calc")
    board_activity = page.get_by_role("article", name="T-001 Add function add").locator(".activity")
    expect(board_activity).to_have_text("thinking", timeout=TIMEOUT)  # a running task, from the server
    expect(page.locator("#board")).to_have_attribute("data-connected", "true", timeout=TIMEOUT)
    board_card = page.get_by_role("article", name="T-001 Add function add")
    heights = set()
    for event, label in reversed(steps):  # each differs from the one before it
        _off_loop(_publish(nats_server.url, [event]))
        expect(board_activity).to_have_text(label, timeout=TIMEOUT)
        heights.add(board_card.evaluate("c => c.getBoundingClientRect().height"))
    # The card keeps its size whatever its activity says, so the cards below it do not jump.
    assert len(heights) == 1, heights

    page.goto(f"{board_url}/ui/projects/calc/tasks/T-001")
    card_activity = page.locator("#activity")
    expect(page.get_by_role("log", name="Agent output")).to_contain_text("collected 1 item", timeout=TIMEOUT)
    for event, label in steps[1:]:
        _off_loop(_publish(nats_server.url, [event]))
        expect(card_activity).to_have_text(label, timeout=TIMEOUT)
