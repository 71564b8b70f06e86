"""Fixtures for the role tests: agents run on a real bubblewrap sandbox (the agents' tools come from
the venv `make sandbox-tools` makes, bound read-only: bandit, pip-audit, pytest, playwright; Chromium
is the host's /usr/bin/chromium), with real git and the scripted model server on a socket.

Bubblewrap is the backend here because it sees the host's Chromium and the tools venv; the docker
image carries the same tools (deploy/sandbox/Dockerfile), but the CI test image is the minimal
debootstrap base, without Chromium or playwright.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from wf_agent_runner.agents import AgentContext, agent_for
from wf_agent_runner.agents.base import Agent
from wf_agent_runner.llm import OllamaAdapter
from wf_agent_runner.output import OutputSink, Transcript, transcript_path
from wf_agent_runner.sandbox import open_sandbox
from wf_agent_runner.workspace import Workspace
from wf_common.config import SandboxConfig
from wf_common.jobs import Job, ProjectRef, Result, TaskRef, idempotency_key

from tests.fakes.ollama import ScriptedOllama
from tests.runner.helpers import MODEL, PRICES, PRICES_TEST, make_repo
from tests.sandbox.conftest import require

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools" / "sandbox"
PYTEST_IN_SANDBOX = "python3 -m pytest -q -p no:cacheprovider"


@pytest.fixture
def tools() -> Path:
    require("bubblewrap")
    if not (TOOLS / "bin" / "bandit").exists():
        pytest.fail(f"the sandbox tools are missing at {TOOLS}: run `make sandbox-tools`")
    return TOOLS


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "ws",
        {
            "app/__init__.py": "",
            "app/prices.py": PRICES,
            "tests/__init__.py": "",
            "tests/test_prices.py": PRICES_TEST,
        },
    )


@pytest.fixture
def fake() -> Iterator[ScriptedOllama]:
    with ScriptedOllama(models=(MODEL,)) as server:
        yield server


@pytest.fixture
async def llm(fake: ScriptedOllama) -> AsyncIterator[OllamaAdapter]:
    adapter = OllamaAdapter(fake.url, MODEL, timeout_seconds=20)
    yield adapter
    await adapter.aclose()


def make_job(workspace: Path, role: str, **project: Any) -> Job:
    task = TaskRef(
        key="T-002",
        title="Add price parser",
        description="Parse prices like '$1,234.50' into floats.",
        acceptance_criteria=["'$1,234.50' parses to 1234.5"],
    )
    ref = ProjectRef(
        slug="listsnap",
        name="ListSnap",
        workspace=str(workspace),
        test_command=project.pop("test_command", PYTEST_IN_SANDBOX),
        **project,
    )
    return Job(
        job_id=7,
        idempotency_key=idempotency_key(ref.slug, task.key, role, 1),
        stage=role,
        role=role,
        attempt=1,
        project=ref,
        task=task,
    )


RoleRunner = Callable[..., Awaitable[Result]]


@pytest.fixture
def run_role(llm: OllamaAdapter, tools: Path) -> RoleRunner:
    """Run a job's agent (or `make(ctx)`) with a real bubblewrap sandbox for its commands."""

    async def run(job: Job, *, make: Callable[[AgentContext], Agent] | None = None, **sandbox: Any) -> Result:
        root = Workspace(job.project.workspace).root
        sink = OutputSink(None, job, actor="test", transcript=Transcript(transcript_path(root, job)))
        settings = {"tools_dir": str(tools), "memory_mb": 2048, "pids": 2048, **sandbox}
        config = SandboxConfig(backend="bubblewrap", **settings)
        labels = {"wf.project": "listsnap", "wf.task": job.task.key, "wf.execution": "7", "wf.runner": "t"}
        sb = await open_sandbox(config, root, labels, lifetime=300)
        ctx = AgentContext(job, llm, sink, root, runner_id="test-runner", test_timeout=120, sandbox=sb)
        try:
            agent = make(ctx) if make else agent_for(job.role)(ctx)
            return await agent.run()
        finally:
            await sb.close()
            await sink.aclose()

    return run
