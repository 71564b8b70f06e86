"""End to end, as a user does it: `wf start` runs every service as its own process on an embedded NATS
and PostgreSQL; the `wf` command creates a project, submits an idea, approves the breakdown and the
deploys, and two tasks go through every stage — one failing QA once and coming back through DEV —
ending done with their commits in the workspace. Then a runner is killed with SIGKILL in the middle of
a job: the job is redelivered, finishes, and nothing happens twice.

The only thing not ours is the model, played by a scripted server speaking Ollama's HTTP API.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import yaml
from wf_cli.embedded.ports import free_port

from tests.e2e.scenario import CalculatorModel
from tests.fakes.ollama import ScriptedOllama
from tests.fixtures.servers import server_scratch_dir
from tests.secrets_check import assert_no_secret_leaked

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
STAGES = ["pm", "dev", "qa", "sec", "docs", "deploy", "testing"]


class Stack:
    """`wf start` and `wf` as a user runs them: no --data-dir, no --url, no token to pass around.
    Only the home of per-user data (XDG_DATA_HOME) points into the test's directory."""

    def __init__(self, tmp: Path, home: Path, model_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WF_")}
        self.env["XDG_DATA_HOME"] = str(home)
        self.data = home / "workflow-hub"  # the default data dir for that home
        self.config = tmp / "config.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "llm_backend": {"adapter": "ollama", "model": "qwen2.5-coder:0.5b", "host": model_url},
                    "runner": {"count": 2, "retry_delays": [0.5, 0.5]},
                    # Short ack_wait so a killed runner's job is redelivered within seconds.
                    "bus": {"ack_wait_seconds": 3, "max_deliver": 5},
                    # The pipeline's behaviour here; tests/sandbox runs the real sandboxes.
                    "sandbox": {"backend": "none"},
                }
            ),
            encoding="utf-8",
        )
        self.log = (tmp / "wf-start.log").open("wb")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [BIN / "wf", "start", "--config", self.config, "--port", str(self.port)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: self._healthy(), timeout=120, what="GET /health to answer 200")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"wf start exited with {self.proc.returncode}; see {self.log.name}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)  # Ctrl-C
                try:
                    self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    raise
        finally:
            self.log.close()

    def wf(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [BIN / "wf", *args], capture_output=True, text=True, timeout=60, env=self.env, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"wf {' '.join(args)} failed ({done.returncode}): {done.stderr}{done.stdout}"
            )
        return done

    def api(self, path: str) -> Any:
        """GET an API path with the token, as a script would (the token file is the user's own)."""
        token = (self.data / "secrets" / "api-token").read_text().strip()
        response = httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def events(self) -> list[str]:
        """Every event on the events stream, as stored."""
        return asyncio.run(_stored_events(self))

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.wf("status", "--json").stdout)
        return data

    def show(self, key: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.wf("show", key, "--project", "calc", "--json").stdout)
        return data

    def task(self, title: str) -> dict[str, Any]:
        return next(t for t in self.status()["tasks"] if t["title"] == title)


async def _stored_events(stack: Stack) -> list[str]:
    run = json.loads((stack.data / "run.json").read_text())
    password = (stack.data / "secrets" / "nats-cli").read_text().strip()
    nc = await nats.connect(f"nats://cli:{password}@127.0.0.1:{run['nats']['port']}")
    try:
        sub = await nc.jetstream().pull_subscribe("wf.events.>", stream="WF_EVENTS")
        found: list[str] = []
        while True:
            try:
                batch = await sub.fetch(500, timeout=1)
            except TimeoutError:  # nats.errors.TimeoutError is one too; no more messages
                return found
            found += [m.data.decode() for m in batch]
    finally:
        await nc.close()


def wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def git_log(workspace: Path, rev: str = "HEAD") -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(workspace), "log", "--format=%s%n%b%x00", rev],
        capture_output=True,
        text=True,
        check=True,
    )
    return [c.strip() for c in out.stdout.split("\x00") if c.strip()]


@pytest.fixture
def model() -> Iterator[tuple[ScriptedOllama, CalculatorModel]]:
    responder = CalculatorModel(hang_once_on="dev:subtract")
    with ScriptedOllama(responder) as server:
        yield server, responder


@pytest.fixture
def stack(tmp_path: Path, model: tuple[ScriptedOllama, CalculatorModel]) -> Iterator[Stack]:
    # The data dir outside pytest's base temp dir: see tests.fixtures.servers.server_scratch_dir.
    with server_scratch_dir("wf-e2e-home-") as home:
        s = Stack(tmp_path, home, model[0].url)
        s.start()
        try:
            yield s
        finally:
            s.stop()


def test_idea_to_committed_tested_code_and_a_runner_killed_mid_job(
    stack: Stack, model: tuple[ScriptedOllama, CalculatorModel], tmp_path: Path
) -> None:
    workspace = tmp_path / "calc"
    stack.wf(
        "project",
        "create",
        "calc",
        "--workspace",
        str(workspace),
        "--test-command",
        f"{sys.executable} -m pytest -q",
    )
    assert (workspace / ".git").is_dir(), "project create makes the workspace a git repository"

    out = stack.wf("idea", "Calculator library with add and multiply", "--project", "calc")
    idea_key = "T-001"
    assert idea_key in out.stdout

    # The PM's breakdown waits for a human.
    wait_for(
        lambda: stack.task("Calculator library with add and multiply")["state"] == "awaiting_approval",
        timeout=60,
        what="the PM breakdown to wait for approval",
    )
    drafts = [t for t in stack.status()["tasks"] if t["parent"] == idea_key]
    assert sorted(t["title"] for t in drafts) == ["Add function add", "Add function multiply"]
    assert all(t["state"] == "draft" for t in drafts)

    # Approving a task that is not at a gate is refused with a clear message.
    refused = stack.wf("approve", drafts[0]["key"], "--project", "calc", check=False)
    assert refused.returncode != 0
    assert "not waiting for approval" in (refused.stderr + refused.stdout)

    stack.wf("approve", idea_key, "--project", "calc")
    add_key = stack.task("Add function add")["key"]
    mul_key = stack.task("Add function multiply")["key"]
    assert stack.show(mul_key)["blocked_by"] == [add_key]

    # Each task stops at the deploy gate; a human approves it.
    def at_gate(key: str) -> bool:
        task = stack.show(key)
        return bool(task["stage"] == "deploy" and task["state"] == "awaiting_approval")

    for key in (add_key, mul_key):
        wait_for(functools.partial(at_gate, key), timeout=120, what=f"{key} to reach the deploy gate")
        stack.wf("approve", key, "--project", "calc")

    def done(key: str) -> bool:
        return bool(stack.show(key)["state"] == "done")

    for key in (add_key, mul_key):
        wait_for(functools.partial(done, key), timeout=60, what=f"{key} to be done")
    wait_for(
        lambda: stack.task("Calculator library with add and multiply")["state"] == "done",
        timeout=30,
        what="the idea to be done once its tasks are",
    )

    # add went straight through every stage.
    add = stack.show(add_key)
    path = [(h["from_stage"], h["to_stage"]) for h in add["handoffs"]]
    assert path == [
        ("backlog", "dev"),
        ("dev", "qa"),
        ("qa", "sec"),
        ("sec", "docs"),
        ("docs", "deploy"),
        ("deploy", "testing"),
        ("testing", "done"),
    ]
    assert add["bugs"] == []

    # multiply failed QA once: a bug with the failing test, back to DEV, then through.
    mul = stack.show(mul_key)
    assert [(h["from_stage"], h["to_stage"]) for h in mul["handoffs"]][:4] == [
        ("backlog", "dev"),
        ("dev", "qa"),
        ("qa", "dev"),
        ("dev", "qa"),
    ]
    assert mul["handoffs"][-1]["to_stage"] == "done"
    assert len(mul["bugs"]) == 1
    bug = mul["bugs"][0]
    assert bug["source_stage"] == "qa"
    assert bug["status"] == "fixed"
    assert any("test_multiply" in t for t in bug["reproduction"]["failed_tests"])
    deploy = next(h for h in mul["handoffs"] if h["from_stage"] == "deploy")
    assert deploy["approved_by"], "the deploy approval records who approved"
    qa_runs = [e for e in mul["executions"] if e["stage"] == "qa"]
    assert [e["result_status"] for e in qa_runs] == ["fail", "pass"]

    # The code is committed and actually works.
    log = git_log(workspace)
    assert any(c.startswith(f"{add_key}:") for c in log)
    assert any(c.startswith(f"{mul_key}:") for c in log)
    check = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"], cwd=workspace, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    assert "return a * b" in (workspace / "calc" / "multiply.py").read_text()

    # Each task worked on its own branch (merged at the deploy approval), with a checkpoint before
    # every stage that ran on it; a finished task's worktree is gone, its branch stays.
    listed = json.loads(stack.wf("checkpoints", add_key, "--project", "calc", "--json").stdout)
    assert [c["stage"] for c in listed["checkpoints"]] == ["dev", "qa", "sec", "docs", "testing"]
    wait_for(
        lambda: not (workspace / ".workflow" / "worktrees" / add_key).exists(),
        timeout=30,
        what="the finished task's worktree to be removed",
    )
    assert (
        add_key
        in subprocess.run(
            ["git", "-C", str(workspace), "branch", "--list", f"wf/{add_key}"], capture_output=True, text=True
        ).stdout
    )
    refused = stack.wf("rollback", add_key, "--to", "dev", "--project", "calc", check=False)
    assert refused.returncode != 0
    assert "is done" in refused.stderr + refused.stdout
    assert stack.status()["pending_pushes"] == []  # no remote configured: nothing to push

    # --- kill -9 a runner in the middle of a job ---------------------------------------------------
    server, responder = model
    stack.wf("idea", "Also subtract", "--project", "calc")
    follow = wait_for(
        lambda: next(
            (
                t
                for t in stack.status()["tasks"]
                if t["title"] == "Also subtract" and t["state"] == "awaiting_approval"
            ),
            None,
        ),
        timeout=60,
        what="the second breakdown",
    )
    stack.wf("approve", follow["key"], "--project", "calc")
    sub_key = wait_for(
        lambda: next(
            (t["key"] for t in stack.status()["tasks"] if t["title"] == "Add function subtract"), None
        ),
        timeout=30,
        what="subtract",
    )
    assert responder.hung.wait(60), "DEV never asked the model about subtract"
    runners = stack.api("/api/runners")
    busy = [r for r in runners if any(f"/{sub_key}/dev/" in k for k in r["busy"])]
    assert len(busy) == 1, runners
    os.kill(busy[0]["pid"], signal.SIGKILL)

    wait_for(
        lambda: stack.show(sub_key)["state"] == "awaiting_approval",
        timeout=120,
        what="the redelivered DEV job to finish and the task to reach the deploy gate",
    )
    sub = stack.show(sub_key)
    dev_runs = [e for e in sub["executions"] if e["stage"] == "dev"]
    assert len(dev_runs) == 1, dev_runs
    assert dev_runs[0]["status"] == "completed", dev_runs
    assert [(h["from_stage"], h["to_stage"]) for h in sub["handoffs"]].count(("dev", "qa")) == 1
    # Not merged yet (the task waits at the deploy gate): the commit is on the task's branch.
    branch_log = git_log(workspace, f"wf/{sub_key}")
    commits = [c for c in branch_log if c.startswith(f"{sub_key}:") and "Implement subtract" in c]
    assert len(commits) == 1, commits
    dev_requests = [
        r
        for r in server.requests
        if "Add function subtract" in json.dumps(r.get("messages", [])[:2])
        and "Check for existing patterns" in json.dumps(r.get("messages", [])[:1])
    ]
    assert len(dev_requests) >= 4, (
        "the job was started twice: once by the killed runner, once after redelivery"
    )

    # After all that, no secret of the install shows in a log, run.json, a command line or an event.
    run = json.loads((stack.data / "run.json").read_text())
    events = stack.events()
    assert len(events) > 20
    assert_no_secret_leaked(stack.data, [s["pid"] for s in run["services"].values()], events)
    # Every service did all of the above within its NATS login's permissions (wf_cli.credentials):
    # neither the server nor a client logged a refused publish or subscription.
    violations = [
        f"{path.name}: {line}"
        for path in stack.data.rglob("*.log")
        for line in path.read_text(errors="replace").splitlines()
        if "violation" in line.lower()
    ]
    assert not violations, violations
