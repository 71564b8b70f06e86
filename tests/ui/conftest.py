"""Browser tests: the real stack (`wf start` as processes, embedded NATS and PostgreSQL), the scripted
model, and Debian's Chromium driven by Playwright. Screenshots go to test-artifacts/ui/.

When the stack has an API token (contract #1, `<data>/secrets/api-token`), the browser signs in the
way a user does, through `/ui/?token=…`, and API calls from the test send it as a Bearer token.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.e2e.test_pipeline import Stack
from tests.fakes.ollama import ScriptedOllama
from tests.ui.model import BoardModel

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not os.path.exists(CHROMIUM):
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: apt-get install -y chromium")
        for item in items:
            if "tests/ui/" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture
def model() -> Iterator[tuple[ScriptedOllama, BoardModel]]:
    responder = BoardModel()
    with ScriptedOllama(responder) as server:
        yield server, responder


@pytest.fixture
def stack(tmp_path: Path, model: tuple[ScriptedOllama, BoardModel]) -> Iterator[Stack]:
    s = Stack(tmp_path, tmp_path / "home", model[0].url)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def api_token(stack: Stack) -> str | None:
    path = stack.data / "secrets" / "api-token"
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    token = api_token(stack)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=15) as client:
        yield client


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser, stack: Stack) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext, stack: Stack) -> Page:
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda err: errors.append(str(err)))
    p.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    token = api_token(stack)
    p.goto(f"{stack.url}/ui/?token={token}" if token else f"{stack.url}/ui/")
    p.errors = errors  # type: ignore[attr-defined]
    return p


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def start_calc(api: httpx.Client, tmp_path: Path, test_command: str = f"{sys.executable} -V") -> None:
    """Project `calc` (its workspace under tmp_path, running `test_command`) and its first idea."""
    created = api.post(
        "/api/projects",
        json={"slug": "calc", "workspace": str(tmp_path / "calc"), "test_command": test_command},
    )
    assert created.status_code == 201, created.text
    idea = api.post("/api/projects/calc/ideas", json={"text": "Calculator with add"})
    assert idea.status_code == 201, idea.text
