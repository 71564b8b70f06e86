"""Board benchmarks in Debian's Chromium (Playwright), against the real board API process on the
benchmark's embedded NATS and PostgreSQL:

1. a board of 2,000 tasks: time from navigation start to the cards being painted;
2. event-to-screen latency with 20 board pages open at once: from publishing an event to JetStream
   to the card's activity text changing in each page, in turns with a raw SSE echo whose 20 pages
   change the same text and are timed the same way (a MutationObserver); and, to split the path,
   events that change nothing on screen (a key with no card; bare echo messages), timed at each
   page's EventSource;
3. JS heap of a card page after 100,000 lines of agent output streamed into its log window.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--enable-precise-memory-info"]  # fmt: skip
BOARD_TASKS = 2000
PAGES = 20
EVENTS = 100
ROUNDS = 5  # board and echo take turns, EVENTS / ROUNDS each, so a change in load hits both alike
GAP_SECONDS = 0.05
LABELS = ("running a command", "thinking")  # what the card's activity text alternates between
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


def _board_api(nats_url: str, db_url: str, port: int, log: Path, token: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WF_NATS_URL": nats_url,
        "WF_DATABASE_URL": db_url,
        "WF_BOARD_PORT": str(port),
        "WF_API_TOKEN": token,
    }
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "wf_board_api"], env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            headers = {"Authorization": f"Bearer {token}"}
            if httpx.get(f"http://127.0.0.1:{port}/ui/", headers=headers, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the board API did not start:\n{log.read_text()[-3000:]}")


async def _publish_toggles(nats_url: str, key: str, count: int) -> list[float]:
    """Alternate command output and model tokens so the card's activity text changes each time
    ("running a command" / "thinking"); a key with no card on the board changes nothing on screen."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sent = []
    try:
        for i in range(count):
            kind = "command_output" if i % 2 == 0 else "token"
            event = AgentOutput(
                project="live", task_key=key, execution_id=1, stage="dev", kind=kind, text=f"{i}"
            )
            sent.append(time.time() * 1000)
            await bus.publish(js, event.subject(), event)
            await asyncio.sleep(GAP_SECONDS)
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


# "On screen" is the same for the board and the echo: the moment a MutationObserver sees the text
# change. "At the page" is the EventSource's message event, for events that change nothing.
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
OFF_BOARD = "T-404"  # a key with no card: its events reach the page and change nothing


ECHO_PAGE = b"""<!doctype html><title>echo</title><p>T-001 <span id="activity"></span></p><script>
window.__marks = []; window.__sse = []; window.__open = false;
const span = document.getElementById('activity');
new MutationObserver(() => window.__marks.push(Date.now()))
  .observe(document.body, {subtree: true, childList: true, characterData: true});
const s = new EventSource('/sse');
s.onopen = () => { window.__open = true; };
s.onmessage = () => window.__sse.push(Date.now());
s.addEventListener('text', (m) => { span.textContent = m.data; });
</script>"""


class RawSseEcho:
    """The floor to compare with: a bare asyncio SSE server (no NATS, no board API) on a thread of
    its own, writing each message straight to every connected page."""

    def __init__(self) -> None:
        self.port = free_port("127.0.0.1")
        self._loop = asyncio.new_event_loop()
        self._writers: list[asyncio.StreamWriter] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> RawSseEcho:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self._loop
        ).result()
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for writer in self._writers:
                writer.close()
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        if request.startswith(b"GET /sse "):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            self._writers.append(writer)
            return
        head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(ECHO_PAGE)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + ECHO_PAGE)
        await writer.drain()
        writer.close()

    def send(self, text: str, event: str | None = None) -> None:
        message = (f"event: {event}\n" if event else "") + f"data: {text}\n\n"

        def write() -> None:
            for writer in self._writers:
                writer.write(message.encode())

        self._loop.call_soon_threadsafe(write)

    def send_toggles(self, count: int, *, on_screen: bool) -> list[float]:
        """The board's events' twins: the same activity text to show, or a message that shows nothing."""
        sent = []
        for i in range(count):
            sent.append(time.time() * 1000)
            if on_screen:
                self.send(LABELS[i % 2], event="text")
            else:
                self.send(str(i))
            time.sleep(GAP_SECONDS)
        return sent


def _open_echo_pages(browser: Browser, echo: RawSseEcho, pages: int) -> list[Page]:
    opened = []
    for _ in range(pages):
        page = browser.new_context().new_page()
        page.goto(f"http://127.0.0.1:{echo.port}/")
        page.wait_for_function("window.__open === true")
        opened.append(page)
    return opened


def _collect(pages: list[Page], name: str, sent: list[float], samples: list[float]) -> None:
    """Add each page's latencies (s) for the round just sent, then clear the page's record."""
    for page in pages:
        page.wait_for_function(f"window.{name}.length >= {len(sent)}", timeout=30_000)
        arrived = page.evaluate(f"window.{name}.splice(0)")
        samples += [(a - s) / 1000 for a, s in zip(arrived, sent, strict=False)]


def _latencies(pages: list[Page], echo_pages: list[Page], echo: RawSseEcho, nats_url: str) -> dict[str, Any]:
    """Board and echo in turns: on screen (the text changes) and at the page (nothing changes)."""
    names = ("board_screen", "echo_screen", "board_page", "echo_page")
    samples: dict[str, list[float]] = {k: [] for k in names}
    n = EVENTS // ROUNDS
    for _ in range(ROUNDS):
        _collect(pages, "__marks", _off_loop(_publish_toggles(nats_url, "T-001", n)), samples["board_screen"])
        _collect(echo_pages, "__marks", echo.send_toggles(n, on_screen=True), samples["echo_screen"])
        for page in pages:
            page.evaluate("window.__sse.splice(0)")  # the on-screen events' arrivals: counted above
        _collect(pages, "__sse", _off_loop(_publish_toggles(nats_url, OFF_BOARD, n)), samples["board_page"])
        _collect(echo_pages, "__sse", echo.send_toggles(n, on_screen=False), samples["echo_page"])
    return {
        "board_event_to_screen_20_pages": summary_ms(samples["board_screen"]),
        "raw_sse_echo_to_screen_20_pages": summary_ms(samples["echo_screen"]),
        "board_event_to_page_no_dom_change_20_pages": summary_ms(samples["board_page"]),
        "raw_sse_echo_to_page_no_dom_change_20_pages": summary_ms(samples["echo_page"]),
    }


def _signed_in(browser: Browser, url: str, token: str) -> BrowserContext:
    """A browser context holding the board's session cookie, got the way a user gets it (?token=)."""
    # Playwright's polling predicates are evaluated strings, which the board's CSP forbids.
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{url}/ui/?token={token}")
    page.close()
    return context


def run(nats_url: str, pg: EmbeddedPostgres, root: Path, *, log_lines: int = LOG_LINES) -> None:
    if not Path(CHROMIUM).exists():
        print(json.dumps({"board": f"skipped: {CHROMIUM} is missing (apt-get install chromium)"}))
        return
    from playwright.sync_api import sync_playwright

    pg.create_database("board")
    db_url = pg.async_url("board")
    asyncio.run(_seed(db_url))
    port = free_port("127.0.0.1")
    url = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(24)
    proc = _board_api(nats_url, db_url, port, root / "board-api.log", token)
    try:
        with sync_playwright() as p:
            launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            browser = _signed_in(launched, url, token)
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
                page = _signed_in(launched, url, token).new_page()
                page.goto(f"{url}/ui/projects/live")
                page.wait_for_function("document.getElementById('board').dataset.connected === 'true'")
                page.evaluate(MARK)
                pages.append(page)
            with RawSseEcho() as echo:
                echo_pages = _open_echo_pages(launched, echo, PAGES)
                for name, figure in _latencies(pages, echo_pages, echo, nats_url).items():
                    print(json.dumps({name: figure}))
                for page in [*pages, *echo_pages]:
                    page.context.close()

            # 3. a card page after 100,000 log lines
            page = browser.new_page()
            page.goto(f"{url}/ui/projects/live/tasks/T-001")
            page.wait_for_function("window.wfEventSource && window.wfEventSource.readyState === 1")
            _off_loop(_publish_lines(nats_url, log_lines))
            page.wait_for_function(
                "document.querySelector('#log').lastElementChild"
                f"?.textContent.includes('line {log_lines - 1} ')",
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


def main() -> None:
    """`python -m benchmarks.board_ui`: the board figures alone, on servers of their own."""
    import argparse
    import tempfile

    from wf_cli.embedded import NatsServer

    ap = argparse.ArgumentParser(prog="python -m benchmarks.board_ui")
    ap.add_argument("--log-lines", type=int, default=LOG_LINES, help="lines streamed into the card page")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wf-bench-board-") as tmp:
        root = Path(tmp)
        nats_server = NatsServer(root / "nats")
        pg = EmbeddedPostgres(root / "pg", durable=True)
        nats_server.start()
        pg.start()
        try:
            run(nats_server.url, pg, root, log_lines=args.log_lines)
        finally:
            pg.stop()
            nats_server.stop()


if __name__ == "__main__":
    main()
