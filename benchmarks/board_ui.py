"""Board benchmarks in Debian's Chromium (Playwright), against the real board API process on the
benchmark's embedded NATS and PostgreSQL:

1. a board of 2,000 tasks: time from navigation start to the cards being painted;
2. event-to-screen latency with 20 board pages open at once: from publishing an event to JetStream
   to the card's activity text changing in each page, side by side with the same events' arrival at
   each page's EventSource (the SSE path alone, no DOM work);
3. JS heap of a card page after 100,000 lines of agent output streamed into its log window.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine
from wf_cli.embedded import EmbeddedPostgres
from wf_cli.embedded.ports import free_port
from wf_common import bus
from wf_common.db.tables import metadata, projects, tasks
from wf_common.events import AgentOutput

from benchmarks.stats import summary_ms

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--enable-precise-memory-info"]  # fmt: skip
BOARD_TASKS = 2000
PAGES = 20
EVENTS = 100
LOG_LINES = 100_000


async def _seed(db_url: str) -> None:
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        for slug, n in (("big", BOARD_TASKS), ("live", 1)):
            pid = (
                await conn.execute(
                    insert(projects)
                    .values(slug=slug, name=slug, workspace=f"/nonexistent/{slug}", test_command="true")
                    .returning(projects.c.id)
                )
            ).scalar_one()
            stages = ["backlog", "dev", "qa", "sec", "docs", "deploy", "testing", "done"]
            await conn.execute(
                insert(tasks),
                [
                    {
                        "project_id": pid,
                        "task_key": f"T-{i + 1:03d}",
                        "title": f"Task number {i + 1} with a realistic title",
                        "current_stage": "dev" if slug == "live" else stages[i % len(stages)],
                        "state": "running" if slug == "live" else "queued",
                        "priority": 1 + i % 10,
                    }
                    for i in range(n)
                ],
            )
    await engine.dispose()


def _board_api(nats_url: str, db_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WF_NATS_URL": nats_url, "WF_DATABASE_URL": db_url, "WF_BOARD_PORT": str(port)}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "wf_board_api"], env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ui/", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the board API did not start; see {log}")


async def _publish_toggles(nats_url: str, count: int) -> list[float]:
    """Alternate command output and model tokens so the card's activity text changes each time
    ("running a command" / "thinking")."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sent = []
    try:
        for i in range(count):
            kind = "command_output" if i % 2 == 0 else "token"
            event = AgentOutput(
                project="live", task_key="T-001", execution_id=1, stage="dev", kind=kind, text=f"{i}"
            )
            sent.append(time.time() * 1000)
            await bus.publish(js, event.subject(), event)
            await asyncio.sleep(0.05)
    finally:
        await nc.close()
    return sent


async def _publish_lines(nats_url: str, count: int) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        batch = []
        for i in range(count):
            event = AgentOutput(
                project="live",
                task_key="T-001",
                execution_id=1,
                stage="dev",
                kind="log",
                text=f"line {i} " * 8,
            )
            batch.append(bus.publish(js, event.subject(), event))
            if len(batch) == 500:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
    finally:
        await nc.close()


def _off_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end on a thread of its own (Playwright's sync API owns this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


MARK = """() => {
  window.__marks = []; window.__sse = [];
  const target = document.getElementById('board');
  new MutationObserver(() => {
    const el = document.querySelector('#card-T-001 .activity');
    if (el && el.textContent !== window.__last) {
      window.__last = el.textContent;
      window.__marks.push(Date.now());
    }
  }).observe(target, {subtree: true, childList: true, characterData: true});
  window.wfEventSource.addEventListener('agent.output', () => window.__sse.push(Date.now()));
}"""


def run(nats_url: str, pg: EmbeddedPostgres, root: Path) -> None:
    if not Path(CHROMIUM).exists():
        print(json.dumps({"board": f"skipped: {CHROMIUM} is missing (apt-get install chromium)"}))
        return
    from playwright.sync_api import sync_playwright

    pg.create_database("board")
    db_url = pg.async_url("board")
    asyncio.run(_seed(db_url))
    port = free_port("127.0.0.1")
    url = f"http://127.0.0.1:{port}"
    proc = _board_api(nats_url, db_url, port, root / "board-api.log")
    try:
        with sync_playwright() as p:
            launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            # Playwright's polling predicates are evaluated strings, which the board's CSP forbids.
            browser = launched.new_context(bypass_csp=True)
            # 1. 2,000 cards
            renders = []
            for _ in range(5):
                page = browser.new_page()
                page.goto(f"{url}/ui/projects/big", wait_until="load")
                page.wait_for_function(f"document.querySelectorAll('article.card').length === {BOARD_TASKS}")
                renders.append(
                    page.evaluate(
                        "(performance.getEntriesByName('first-contentful-paint')[0]"
                        " || {startTime: 0}).startTime"
                    )
                )
                page.close()
            renders.sort()
            print(
                json.dumps(
                    {"board_2000_tasks_first_paint_ms": {"median": round(renders[2], 1), "runs": renders}}
                )
            )

            # 2. 20 pages, event to screen
            pages = []
            for _ in range(PAGES):
                # One context each: a browser allows 6 HTTP/1.1 connections per host and profile, and
                # every board page holds one open for its event stream.
                page = launched.new_context(bypass_csp=True).new_page()
                page.goto(f"{url}/ui/projects/live")
                page.wait_for_function("document.getElementById('board').dataset.connected === 'true'")
                page.evaluate(MARK)
                pages.append(page)
            sent = _off_loop(_publish_toggles(nats_url, EVENTS))
            for page in pages:
                page.wait_for_function(f"window.__sse.length >= {EVENTS}", timeout=30_000)
            screen, sse = [], []
            for page in pages:
                marks = page.evaluate("window.__marks")
                arrivals = page.evaluate("window.__sse")
                screen += [m - s for m, s in zip(marks, sent, strict=False)]
                sse += [a - s for a, s in zip(arrivals, sent, strict=False)]
                page.close()
            print(json.dumps({"board_event_to_screen_20_pages": summary_ms([x / 1000 for x in screen])}))
            print(json.dumps({"raw_sse_event_to_page_20_pages": summary_ms([x / 1000 for x in sse])}))

            # 3. a card page after 100,000 log lines
            page = browser.new_page()
            page.goto(f"{url}/ui/projects/live/tasks/T-001")
            page.wait_for_function("window.wfEventSource && window.wfEventSource.readyState === 1")
            _off_loop(_publish_lines(nats_url, LOG_LINES))
            page.wait_for_function(
                "document.querySelector('#log').lastElementChild"
                f"?.textContent.includes('line {LOG_LINES - 1} ')",
                timeout=600_000,
            )
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            cdp.send("HeapProfiler.collectGarbage")
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            lines_in_dom = page.evaluate("document.querySelector('#log').childElementCount")
            print(
                json.dumps(
                    {
                        "card_page_after_100k_log_lines": {
                            "js_heap_used_mb": round(metrics.get("JSHeapUsedSize", 0) / 2**20, 1),
                            "dom_nodes": int(metrics.get("Nodes", 0)),
                            "lines_in_window": lines_in_dom,
                        }
                    }
                )
            )
            launched.close()
    finally:
        proc.terminate()
        proc.wait(20)
