"""Loop guards, the backend choice and the `none` warning, through the job executor."""

from __future__ import annotations

from pathlib import Path

import pytest
from wf_agent_runner.execution import JobExecutor
from wf_agent_runner.sandbox import SandboxError, resolve_backend
from wf_common.config import SandboxConfig, parse_config
from wf_common.errors import ConfigError
from wf_common.jobs import Job, ProjectRef, TaskRef, idempotency_key
from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.helpers import MODEL, make_repo


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "ws", {"app/__init__.py": ""})


def dev_job(ws: Path, job_id: int = 1, attempt: int = 1) -> Job:
    project = ProjectRef(slug="listsnap", name="L", workspace=str(ws), test_command="true")
    task = TaskRef(key="T-002", title="Add price parser")
    return Job(
        job_id=job_id,
        idempotency_key=idempotency_key("listsnap", "T-002", "dev", attempt),
        stage="dev",
        role="dev",
        attempt=attempt,
        project=project,
        task=task,
    )


def executor(url: str, **guards: int) -> JobExecutor:
    config = parse_config(
        {
            "llm_backend": {"host": url, "model": MODEL, "timeout_seconds": 20},
            "sandbox": {"backend": "none"},
            "guards": guards,
        }
    )
    return JobExecutor(config, None, runner_id="guards-test")


async def test_the_same_tool_call_repeated_stops_the_agent_for_a_human(ws: Path) -> None:
    with ScriptedOllama(models=(MODEL,)) as fake:
        fake.queue(*[Reply.tool("read_file", path="app/__init__.py") for _ in range(5)])
        outcome = await executor(fake.url, repeated_tool_calls=3).execute(dev_job(ws), 1)
        assert len(fake.requests) == 3  # stopped before a fourth model turn
    assert outcome.result is not None
    assert outcome.result.status is Verdict.FAIL
    assert outcome.result.escalate  # needs-human
    assert "same tool call read_file" in outcome.result.summary
    assert "3 times" in outcome.result.summary


async def test_a_token_budget_per_execution_stops_the_agent(ws: Path) -> None:
    with ScriptedOllama(models=(MODEL,)) as fake:
        fake.queue(Reply.tool("list_files", path="."), Reply.tool("finish", status="pass", summary="Done"))
        outcome = await executor(fake.url, tokens_per_execution=1).execute(dev_job(ws), 1)
    assert outcome.result is not None
    assert outcome.result.status is Verdict.FAIL
    assert outcome.result.escalate
    assert "guards.tokens_per_execution" in outcome.result.summary


async def test_a_token_budget_per_task_counts_earlier_executions(ws: Path) -> None:
    with ScriptedOllama(models=(MODEL,)) as fake:
        give_up = Reply.tool("finish", status="fail", summary="Which currency?")
        fake.queue(give_up, give_up, give_up)  # the first two go back: nothing is written yet
        first = await executor(fake.url).execute(dev_job(ws), 1)
        assert first.result is not None
        used = first.result.usage.prompt_tokens + first.result.usage.completion_tokens
        fake.queue(Reply.tool("finish", status="pass", summary="Done"))
        # The second execution alone stays within the budget; with the first it does not.
        second = await executor(fake.url, tokens_per_task=used + 1).execute(dev_job(ws, 2, attempt=2), 1)
    assert second.result is not None
    assert second.result.escalate
    assert "guards.tokens_per_task" in second.result.summary


async def test_backend_none_is_warned_about_in_the_result(ws: Path) -> None:
    with ScriptedOllama(models=(MODEL,)) as fake:
        fake.queue(
            Reply.tool("run", command="echo hi"),
            Reply.tool("write_file", path="app/hi.py", content="HI = 1\n"),
            Reply.tool("finish", status="pass", summary="Done"),
        )
        outcome = await executor(fake.url).execute(dev_job(ws), 1)
    assert outcome.result is not None
    assert "Warning: sandbox.backend is 'none'" in outcome.result.summary


def test_auto_with_no_engine_refuses_and_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(SandboxError) as err:
        resolve_backend(SandboxConfig(backend="auto"))
    assert "apt-get install docker.io" in str(err.value)
    assert "apt-get install bubblewrap" in str(err.value)


def test_sandbox_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"sandbox\.run_timeout_max_seconds"):
        parse_config({"sandbox": {"run_timeout_seconds": 300, "run_timeout_max_seconds": 60}})
    with pytest.raises(ConfigError, match=r"sandbox\.backend"):
        parse_config({"sandbox": {"backend": "podman"}})
