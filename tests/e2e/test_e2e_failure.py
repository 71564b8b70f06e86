"""TESTING's end-to-end check, as one chain: `wf start` runs every service as a process, the project
has an E2E command (`agents.projects.<slug>.e2e_command`: a Playwright check of a page, on Debian's
Chromium, in the bubblewrap sandbox with the tools venv `make sandbox-tools` makes), a task goes
through DEV and the deploy gate to TESTING, the check fails, and then — over HTTP with the install's
token, as a user or the `wf` command would — the task's bug is listed with the screenshot and the log
attached, the screenshot downloads as a PNG, and the task is back in DEV (TESTING's `on_fail`), where
the failure reaches the model and the fix goes back to the deploy gate.

The only thing not ours is the model, played by a scripted server speaking Ollama's HTTP API.
"""

from __future__ import annotations

import functools
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from wf_common.config import default_stages

from tests.e2e.scenario import ROLE_MARKERS
from tests.e2e.test_pipeline import Stack, wait_for
from tests.fakes.ollama import Reply, ScriptedOllama
from tests.fixtures.servers import server_scratch_dir
from tests.roles.conftest import PYTEST_IN_SANDBOX, TOOLS
from tests.roles.test_roles import E2E
from tests.sandbox.conftest import require

pytestmark = pytest.mark.e2e

PROJECT = "shop"
TITLE = "Add the price list page"
E2E_COMMAND = "python3 e2e/check_page.py"
FAILURE = "FAILED: the heading is 'Price lst', expected 'Price list'"
# The default pipeline without QA, SEC and DOCS (their own tests run them): TESTING keeps its default
# `on_fail`, so where the failed task goes is what a user's pipeline does.
STAGES = [s for s in default_stages() if s.name in ("pm", "dev", "deploy", "testing")]
TESTING_ON_FAIL = next(s.on_fail for s in STAGES if s.name == "testing")
PAGE_TEST = """\
from pathlib import Path


def test_the_page_has_a_heading():
    assert "<h1>" in Path("site/index.html").read_text()
"""


def page(heading: str) -> str:
    return f"<html><body><h1>{heading}</h1><p>Apples 2.50</p></body></html>\n"


@dataclass
class PageModel:
    """Every agent: the PM breaks the idea into one task, DEV writes the page (with a typo in the
    heading, fixed once a bug shows the E2E failure), TESTING looks and passes (the E2E run decides)."""

    dev_prompts: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: dict[str, Any]) -> Reply:
        messages = request.get("messages") or []
        prompt = "\n".join(
            str(m.get("content") or "") for m in messages if m.get("role") in ("system", "user")
        )
        role = next((r for r, marker in ROLE_MARKERS.items() if marker in prompt), None)
        step = sum(1 for m in messages if m.get("role") == "tool")
        if role == "pm":
            task = {
                "title": TITLE,
                "description": "site/index.html shows the prices under the heading 'Price list'.",
                "acceptance_criteria": ["the page's heading reads 'Price list'"],
                "priority": 5,
                "depends_on": [],
            }
            return Reply.json({"tasks": [task]})
        if role == "dev":
            if step == 0:
                with self._lock:
                    self.dev_prompts.append(prompt)
            fixing = FAILURE in prompt
            if step == 0:
                return Reply.tool(
                    "write_file",
                    path="site/index.html",
                    content=page("Price list" if fixing else "Price lst"),
                )
            return Reply.tool(
                "finish", status="pass", summary="Fix the heading" if fixing else "Add the page"
            )
        if role == "testing":
            return Reply.tool("finish", status="pass", summary="The page looked fine to me")
        raise AssertionError(f"a model request for a role this test does not play: {prompt[:300]!r}")


class PlaywrightStack(Stack):
    """`wf start` with a bubblewrap sandbox carrying the agents' tools, and the project's E2E command."""

    def __init__(self, tmp: Path, home: Path, model_url: str) -> None:
        super().__init__(tmp, home, model_url)
        self.config.write_text(
            yaml.safe_dump(
                {
                    "llm_backend": {"adapter": "ollama", "model": "qwen2.5-coder:0.5b", "host": model_url},
                    "runner": {"count": 1, "retry_delays": [0.5, 0.5]},
                    "bus": {"ack_wait_seconds": 30, "max_deliver": 3},
                    # Chromium needs more than the default limits (as in tests/roles).
                    "sandbox": {
                        "backend": "bubblewrap",
                        "tools_dir": str(TOOLS),
                        "memory_mb": 2048,
                        "pids": 2048,
                    },
                    "pipeline": {"stages": [s.model_dump(exclude_defaults=True) for s in STAGES]},
                    "agents": {"projects": {PROJECT: {"e2e_command": E2E_COMMAND}}},
                }
            ),
            encoding="utf-8",
        )

    def client(self) -> httpx.Client:
        token = (self.data / "secrets" / "api-token").read_text().strip()
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=15)

    def show(self, key: str) -> dict[str, Any]:
        with self.client() as api:
            found = api.get(f"/api/projects/{PROJECT}/tasks/{key}")
        assert found.status_code == 200, found.text
        data: dict[str, Any] = found.json()
        return data


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[PlaywrightStack, PageModel]]:
    require("bubblewrap")
    if not (TOOLS / "bin" / "playwright").exists():
        pytest.fail(f"the sandbox tools are missing at {TOOLS}: run `make sandbox-tools`")
    responder = PageModel()
    with ScriptedOllama(responder) as server, server_scratch_dir("wf-e2e-home-") as home:
        s = PlaywrightStack(tmp_path, home, server.url)
        s.start()
        try:
            yield s, responder
        finally:
            s.stop()


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def at(stack: PlaywrightStack, key: str, stage: str, state: str) -> bool:
    task = stack.show(key)
    return bool((task["stage"], task["state"]) == (stage, state))


def test_a_failed_playwright_check_attaches_its_screenshot_and_log_to_the_bug_and_reworks_the_task(
    stack: tuple[PlaywrightStack, PageModel], tmp_path: Path
) -> None:
    s, model = stack
    workspace = tmp_path / "shop"
    s.wf("project", "create", PROJECT, "--workspace", str(workspace), "--test-command", PYTEST_IN_SANDBOX)
    # The project's own checks, as its developers wrote them: a unit test and the Playwright check.
    (workspace / "e2e").mkdir()
    (workspace / "e2e" / "check_page.py").write_text(E2E)
    (workspace / "tests").mkdir()
    (workspace / "tests" / "test_page.py").write_text(PAGE_TEST)
    git(workspace, "add", "-A")
    git(
        workspace,
        "-c",
        "user.name=Dev",
        "-c",
        "user.email=dev@example.com",
        "commit",
        "-q",
        "-m",
        "Add checks",
    )

    s.wf("idea", "A page with our prices", "--project", PROJECT)
    wait_for(functools.partial(at, s, "T-001", "pm", "awaiting_approval"), timeout=60, what="the breakdown")
    s.wf("approve", "T-001", "--project", PROJECT)
    key = "T-002"
    assert s.show(key)["title"] == TITLE
    wait_for(
        functools.partial(at, s, key, "deploy", "awaiting_approval"), timeout=180, what="the deploy gate"
    )
    s.wf("approve", key, "--project", PROJECT)

    # TESTING runs the Playwright check after the deploy; it fails and the task goes to rework.
    def reworked() -> bool:
        return any(h["from_stage"] == "testing" for h in s.show(key)["handoffs"])

    wait_for(reworked, timeout=300, what="TESTING to fail the task")

    with s.client() as api:
        listed = api.get("/api/bugs", params={"project": PROJECT, "task": key})
        assert listed.status_code == 200, listed.text
        [bug] = listed.json()
        assert bug["source_stage"] == "testing"
        assert bug["title"].startswith(f"E2E `{E2E_COMMAND}`: tests failed"), bug["title"]

        # The bug's files, as the board's task page lists them (each names its bug).
        task = api.get(f"/api/projects/{PROJECT}/tasks/{key}").json()
        files = {a["filename"]: a for a in task["attachments"] if a["bug_key"] == bug["key"]}
        assert {"test-results_failure.png", "e2e-output.txt"} <= set(files), task["attachments"]

        shot = api.get(files["test-results_failure.png"]["url"])
        assert shot.status_code == 200, shot.text
        assert shot.headers["content-type"] == "image/png"
        assert shot.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(shot.content) == files["test-results_failure.png"]["size"]
        assert shot.headers["content-disposition"].startswith("attachment;")

        log = api.get(files["e2e-output.txt"]["url"])
        assert log.status_code == 200, log.text
        assert log.headers["content-type"].startswith("text/plain")
        assert FAILURE in log.text, log.text
        assert f"$ {E2E_COMMAND}" in log.text

        # Without the token, nothing of it is served.
        assert httpx.get(f"{s.url}{files['test-results_failure.png']['url']}", timeout=15).status_code == 401

    # `wf show` lists the same files with their bug.
    shown = s.wf("show", key, "--project", PROJECT).stdout
    row = next(line for line in shown.splitlines() if "test-results_failure.png" in line)
    assert bug["key"] in row, shown

    # Back to the stage TESTING's on_fail names, with the failure in DEV's prompt; the fix goes back
    # to the deploy gate.
    assert TESTING_ON_FAIL == "dev"
    wait_for(functools.partial(at, s, key, "deploy", "awaiting_approval"), timeout=180, what="the rework")
    task = s.show(key)
    assert [(h["from_stage"], h["to_stage"]) for h in task["handoffs"]] == [
        ("backlog", "dev"),
        ("dev", "deploy"),
        ("deploy", "testing"),
        ("testing", TESTING_ON_FAIL),
        ("dev", "deploy"),
    ]
    assert task["rework_count"] == 1
    testing = [e for e in task["executions"] if e["stage"] == "testing"]
    assert [e["result_status"] for e in testing] == ["fail"]
    assert len(model.dev_prompts) == 2
    assert FAILURE in model.dev_prompts[1]
    assert "Price list" in git(workspace, "show", f"wf/{key}:site/index.html")
