"""The whole pipeline on the `openai` and `anthropic` adapters, as test_pipeline runs it on `ollama`:
`wf start` runs every service as a process, the model is a scripted server speaking that service's
wire protocol (OpenAI SSE chunks with tool_calls deltas / Anthropic's event stream with tool_use
blocks and tool-forced structured output), an idea becomes two tasks that go through every stage
(multiply failing QA once) to done with working, committed code; then the cost ledger (`wf stats`)
shows what each role and model used, and the API key appears in no log."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.scenario import CalculatorModel
from tests.e2e.test_pipeline import Stack, git_log, wait_for
from tests.fakes.anthropic import ScriptedAnthropic
from tests.fakes.openai import ScriptedOpenAI

pytestmark = pytest.mark.e2e

KEY = "sk-e2e-7d1f3c5b9a2e4d6f8a0b"
IDEA = "Calculator library with add and multiply"
Served = ScriptedOpenAI | ScriptedAnthropic


class BackendStack(Stack):
    def __init__(self, tmp: Path, llm: dict[str, Any]) -> None:
        super().__init__(tmp, tmp / "home", "http://unused")
        self.config.write_text(
            yaml.safe_dump(
                {
                    "llm_backend": llm,
                    "cost": {
                        "prices": {llm["model"]: {"prompt_usd_per_mtok": 1.0, "completion_usd_per_mtok": 4.0}}
                    },
                    "runner": {"count": 2, "retry_delays": [0.5, 0.5]},
                    # The test command is this venv's python, which only the host has; the sandboxes
                    # themselves are tested in tests/sandbox.
                    "sandbox": {"backend": "none"},
                }
            ),
            encoding="utf-8",
        )


@pytest.fixture(params=["openai", "anthropic"])
def backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Served, dict[str, Any]]]:
    monkeypatch.setenv("E2E_LLM_KEY", KEY)  # inherited by `wf start`: config reads ${E2E_LLM_KEY}
    kind = str(request.param)
    if kind == "openai":
        server: Served = ScriptedOpenAI(CalculatorModel(), models=("qwen2.5-coder-7b-instruct",), api_key=KEY)
        with server as s:
            yield (
                kind,
                s,
                {
                    "adapter": "openai",
                    "base_url": s.base_url,
                    "model": "qwen2.5-coder-7b-instruct",
                    "api_key": "${E2E_LLM_KEY}",
                },
            )
    else:
        server = ScriptedAnthropic(CalculatorModel(), models=("claude-sonnet-4-5",), api_key=KEY)
        with server as s:
            yield (
                kind,
                s,
                {
                    "adapter": "anthropic",
                    "base_url": s.base_url,
                    "model": "claude-sonnet-4-5",
                    "api_key": "${E2E_LLM_KEY}",
                },
            )


def test_idea_to_done_on_each_adapter(tmp_path: Path, backend: tuple[str, Served, dict[str, Any]]) -> None:
    kind, server, llm = backend
    stack = BackendStack(tmp_path, llm)
    stack.start()
    try:
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
        stack.wf("idea", IDEA, "--project", "calc")
        wait_for(
            lambda: stack.task(IDEA)["state"] == "awaiting_approval", timeout=90, what="the PM breakdown"
        )
        stack.wf("approve", "T-001", "--project", "calc")
        keys = [stack.task("Add function add")["key"], stack.task("Add function multiply")["key"]]

        def at_deploy_gate(key: str) -> bool:
            shown = stack.show(key)
            return bool(shown["stage"] == "deploy" and shown["state"] == "awaiting_approval")

        for key in keys:
            wait_for(partial(at_deploy_gate, key), timeout=180, what=f"{key} to reach the deploy gate")
            stack.wf("approve", key, "--project", "calc")
        for key in keys:
            wait_for(partial(lambda k: stack.show(k)["state"] == "done", key), timeout=90, what=f"{key} done")

        mul = stack.show(keys[1])
        assert [e["result_status"] for e in mul["executions"] if e["stage"] == "qa"] == ["fail", "pass"]
        log = git_log(workspace)
        assert all(any(c.startswith(f"{k}:") for c in log) for k in keys)
        check = subprocess.run(
            [sys.executable, "-m", "pytest", "-q"], cwd=workspace, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout

        # Every agent call used this adapter's wire format, with the key from the environment.
        assert server.requests
        assert all(
            h.get("authorization") == f"Bearer {KEY}" or h.get("x-api-key") == KEY for h in server.headers
        )

        stats = json.loads(stack.wf("stats", "--project", "calc", "--json").stdout)
        roles = {r["role"]: r for r in stats["roles"]}
        assert set(roles) == {"pm", "dev", "qa", "sec", "docs", "testing"}
        assert all(r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 for r in roles.values())
        assert roles["qa"]["pass_rate"] < 1.0  # multiply failed QA once
        (model,) = stats["models"]
        assert model["model"] == llm["model"]
        expected = (model["prompt_tokens"] * 1.0 + model["completion_tokens"] * 4.0) / 1e6
        assert model["cost_usd"] == pytest.approx(expected, rel=1e-3)
        assert stack.show(keys[0])["cost"]["cost_usd"] > 0
    finally:
        stack.stop()
    assert KEY not in (tmp_path / "wf-start.log").read_text(encoding="utf-8", errors="replace"), kind
