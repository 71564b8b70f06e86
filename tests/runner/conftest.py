"""Fixtures for the agent runner: temp git workspaces, the scripted Ollama, jobs, and running agents.

Everything is real: git repositories on disk, the fake model server on a socket, the Ollama adapter
over HTTP, pytest run as a subprocess, and (in test_runner_nats) a real nats-server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from wf_agent_runner.agents import AgentContext, agent_for
from wf_agent_runner.llm import OllamaAdapter
from wf_agent_runner.output import OutputSink, Transcript, transcript_path
from wf_agent_runner.sandbox.process import HostSandbox
from wf_agent_runner.workspace import Workspace
from wf_common.config import SandboxConfig
from wf_common.jobs import Job, ProjectRef, Result, TaskRef, idempotency_key

from tests.fakes.ollama import ScriptedOllama
from tests.runner.helpers import MODEL, PRICES, PRICES_TEST, PYTEST, make_repo


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A small Python project with one passing test, committed."""
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


JobFactory = Callable[..., Job]


@pytest.fixture
def make_job(workspace: Path) -> JobFactory:
    def make(role: str = "dev", *, stage: str | None = None, attempt: int = 1, **fields: Any) -> Job:
        stage = stage or role
        task = fields.pop("task", None) or TaskRef(
            key="T-002",
            title="Add price parser",
            description="Parse prices like '$1,234.50' into floats.",
            acceptance_criteria=["'$1,234.50' parses to 1234.5", "invalid input raises ValueError"],
        )
        project = fields.pop("project", None) or ProjectRef(
            slug="listsnap", name="ListSnap", workspace=str(workspace), test_command=PYTEST
        )
        return Job(
            job_id=fields.pop("job_id", 7),
            idempotency_key=idempotency_key(project.slug, task.key, stage, attempt),
            stage=stage,
            role=role,
            attempt=attempt,
            project=project,
            task=task,
            **fields,
        )

    return make


AgentRunner = Callable[[Job], Awaitable[Result]]


@pytest.fixture
def run_agent(llm: OllamaAdapter) -> AgentRunner:
    """Run the job's agent directly (no bus): output goes to the transcript only. Commands run with
    backend `none` (host, fresh HOME, minimal env): these tests are about agents; tests/sandbox runs
    the real sandboxes."""

    async def run(job: Job) -> Result:
        root = Workspace(job.project.workspace).root
        sink = OutputSink(None, job, actor="test", transcript=Transcript(transcript_path(root, job)))
        sandbox = HostSandbox(SandboxConfig(backend="none"), root)
        ctx = AgentContext(job, llm, sink, root, runner_id="test-runner", test_timeout=60, sandbox=sandbox)
        try:
            result: Result = await agent_for(job.role)(ctx).run()
            return result
        finally:
            await sandbox.close()
            await sink.aclose()

    return run
