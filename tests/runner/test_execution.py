"""The failure policy of one job: retry while the model is unreachable, then an error Result; every
other failure is an error Result at once. Nothing loops forever."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from wf_agent_runner.execution import JobExecutor, retry_delay
from wf_common.config import parse_config
from wf_common.jobs import ProjectRef
from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.conftest import JobFactory
from tests.runner.helpers import MODEL


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def executor(host: str, **llm: Any) -> JobExecutor:
    config = parse_config(
        {
            "llm_backend": {"host": host, "model": MODEL, "timeout_seconds": 10, **llm},
            "bus": {"max_deliver": 3},
            "runner": {"retry_delays": [1.5, 4.0]},
            "sandbox": {"backend": "none"},  # agents' behaviour here; tests/sandbox runs the sandboxes
        }
    )
    return JobExecutor(config, None, runner_id="r1", test_timeout=30)


async def test_unreachable_model_is_retried_then_reported_with_its_url(make_job: JobFactory) -> None:
    url = dead_url()
    ex, job = executor(url), make_job("dev")
    first = await ex.execute(job, 1)
    assert first.retry_in == 1.5
    assert first.result is None
    assert (await ex.execute(job, 2)).retry_in == 4.0
    last = await ex.execute(job, 3)  # bus.max_deliver = 3: the last delivery
    assert last.retry_in is None
    assert last.terminate is not None
    assert last.result is not None
    result = last.result
    assert result.status is Verdict.ERROR
    assert result.error is not None
    assert result.error.kind == "llm_unavailable"
    assert result.error.retryable
    assert url in result.error.message
    assert "ollama serve" in result.error.message
    assert result.summary == result.error.message
    assert result.runner_id == "r1"
    assert (result.idempotency_key, result.stage, result.task_key) == (job.idempotency_key, "dev", "T-002")


def test_retry_delays_use_the_last_one_when_deliveries_outnumber_them() -> None:
    assert [retry_delay([5, 15, 30], n) for n in (1, 2, 3, 4, 9)] == [5, 15, 30, 30, 30]
    assert retry_delay([], 1) == 5.0


async def test_missing_model_is_an_error_at_once(fake: ScriptedOllama, make_job: JobFactory) -> None:
    outcome = await executor(fake.url, model="no-such-model:1b").execute(make_job("dev"), 1)
    assert outcome.result is not None
    assert outcome.result.error is not None
    assert outcome.result.error.kind == "llm_model_not_found"
    assert not outcome.result.error.retryable
    assert "ollama pull no-such-model:1b" in outcome.result.error.message


async def test_mid_answer_failure_is_retried(fake: ScriptedOllama, make_job: JobFactory) -> None:
    fake.queue(Reply(content="half an answer", mid_stream_error="model runner crashed"))
    outcome = await executor(fake.url).execute(make_job("dev"), 1)
    assert outcome.retry_in == 1.5


async def test_missing_workspace_is_an_error(make_job: JobFactory, tmp_path: Path) -> None:
    gone = ProjectRef(slug="listsnap", name="L", workspace=str(tmp_path / "gone"), test_command="true")
    outcome = await executor(dead_url()).execute(make_job("dev", project=gone), 1)
    assert outcome.result is not None
    assert outcome.result.error is not None
    assert outcome.result.error.kind == "workspace"
    assert "does not exist" in outcome.result.summary
    assert outcome.terminate is not None


async def test_stage_time_limit_is_an_error(fake: ScriptedOllama, make_job: JobFactory) -> None:
    fake.queue(Reply(tool_calls=[("list_files", {"path": "."})], delay=30))
    outcome = await executor(fake.url).execute(make_job("dev", timeout_seconds=1), 1)
    assert outcome.result is not None
    assert outcome.result.error is not None
    assert outcome.result.error.kind == "timeout"
    assert "1s" in outcome.result.summary


async def test_unexpected_failure_is_an_error_result(make_job: JobFactory) -> None:
    outcome = await executor(dead_url()).execute(make_job("ops", stage="dev"), 1)
    assert outcome.result is not None
    assert outcome.result.error is not None
    assert outcome.result.error.kind == "runner_crash"
    assert "no agent for role 'ops'" in outcome.result.summary
    assert outcome.terminate is not None


async def test_a_successful_job_reports_usage_and_no_error(
    fake: ScriptedOllama, make_job: JobFactory
) -> None:
    fake.queue(
        Reply.tool("write_file", path="app/rates.py", content="RATE = 1\n"),
        Reply.tool("finish", status="pass", summary="Add rates"),
    )
    outcome = await executor(fake.url).execute(make_job("dev"), 1)
    assert outcome.result is not None
    assert outcome.terminate is None
    assert outcome.retry_in is None
    assert outcome.result.status is Verdict.PASS
    assert outcome.result.error is None
    assert outcome.result.usage.llm_calls == 2
    assert outcome.result.usage.model == MODEL
