"""The PM and DEV agents against a real local model (opt-in: `make test-real-llm`, which serves
Qwen2.5-Coder-0.5B-Instruct with llama-cpp-python and sets WF_REAL_LLM_URL). The model is small, so
these assert structure, not quality: a breakdown that validates, and a real commit in the workspace.
Both go through the `openai` adapter and the tool-call repair, exactly as in production."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from wf_agent_runner.agents import AgentContext, agent_for
from wf_agent_runner.llm import build_adapter
from wf_agent_runner.output import OutputSink, Transcript, transcript_path
from wf_agent_runner.sandbox.process import HostSandbox
from wf_common.config import LLMBackendConfig, SandboxConfig
from wf_common.jobs import Job, ProjectRef, Result, TaskRef, idempotency_key
from wf_common.states import Verdict

from tests.runner.helpers import PYTEST, git, make_repo

URL = os.environ.get("WF_REAL_LLM_URL", "")
pytestmark = [
    pytest.mark.real_llm,
    pytest.mark.skipif(not URL, reason="needs a real model server: run `make test-real-llm`"),
    pytest.mark.timeout(1800),
]


def backend() -> LLMBackendConfig:
    return LLMBackendConfig(
        adapter="openai",
        host=URL,
        model=os.environ.get("WF_REAL_LLM_MODEL", "qwen2.5-coder-0.5b-instruct"),
        timeout_seconds=900,
        max_tokens=1024,
        # What a user of a 0.5B model configures: its native tool calls name tools that do not
        # exist, so calls are emulated, each reply constrained to one call's JSON schema.
        tool_calls="emulated",
    )


def job(workspace: Path, role: str, task: TaskRef, **fields: Any) -> Job:
    project = ProjectRef(slug="calc", name="Calc", workspace=str(workspace), test_command=PYTEST)
    return Job(
        job_id=1,
        idempotency_key=idempotency_key("calc", task.key, role, 1),
        stage=role,
        role=role,
        attempt=1,
        project=project,
        task=task,
        max_turns=12,
        **fields,
    )


async def run(j: Job) -> Result:
    root = Path(j.project.workspace)
    sink = OutputSink(None, j, actor="real-llm", transcript=Transcript(transcript_path(root, j)))
    llm = build_adapter(backend(), j.role)
    # Backend `none` (host, fresh HOME, minimal env), as tests/runner does: the test command and `run`
    # need a sandbox; this test is about the model, tests/sandbox runs the real sandboxes.
    sandbox = HostSandbox(SandboxConfig(backend="none"), root)
    ctx = AgentContext(j, llm, sink, root, runner_id="real-llm", sandbox=sandbox)
    try:
        result: Result = await agent_for(j.role)(ctx).run()
        return result
    finally:
        await sandbox.close()
        await llm.aclose()
        await sink.aclose()


async def test_pm_breakdown_validates(tmp_path: Path) -> None:
    ws = make_repo(tmp_path / "calc", {"README.md": "# calc\n"})
    idea = TaskRef(key="T-001", title="Calculator library", description="A calculator with add and multiply.")
    result = await run(
        job(ws, "pm", idea, idea="A Python calculator library with add and multiply functions.")
    )
    assert result.status is Verdict.PASS, result.summary
    assert result.breakdown is not None
    assert result.breakdown.tasks
    assert (ws / ".workflow" / "tasks.json").is_file()


async def test_dev_makes_a_real_commit(tmp_path: Path) -> None:
    ws = make_repo(tmp_path / "calc", {"calc/__init__.py": "", "README.md": "# calc\n"})
    task = TaskRef(
        key="T-002",
        title="Add function add",
        description="Create calc/add.py with a function add(a, b) that returns a + b.",
        acceptance_criteria=["add(2, 3) returns 5"],
    )
    before = git(ws, "rev-parse", "HEAD")
    result = await run(job(ws, "dev", task))
    assert result.status is Verdict.PASS, result.summary
    assert result.commits
    assert git(ws, "rev-parse", "HEAD") != before
    assert result.files_changed
    assert result.usage.prompt_tokens > 0
