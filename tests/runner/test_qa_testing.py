"""QA and TESTING: the verdict follows the real test run, not what the model says."""

from __future__ import annotations

import sys
from pathlib import Path

from wf_agent_runner.sandbox.process import HostSandbox
from wf_agent_runner.testrun import run_tests
from wf_common.config import SandboxConfig
from wf_common.jobs import ProjectRef
from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.conftest import AgentRunner, JobFactory
from tests.runner.helpers import PYTEST, git, log_subjects, make_repo

FAILING_TEST = """\
import pytest

from app.prices import parse_price


def test_currency_suffix() -> None:
    assert parse_price("3 USD") == 3


def test_euro() -> None:
    assert parse_price("€3") == 3


def test_garbage_raises() -> None:
    with pytest.raises(ValueError):
        parse_price("abc")
"""


async def test_qa_passes_when_the_tests_pass_and_commits_its_tests(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    more = "from app.prices import parse_price\n\n\ndef test_plain():\n    assert parse_price('3') == 3\n"
    fake.queue(
        Reply.tool("write_file", path="tests/test_more.py", content=more),
        Reply.tool("finish", status="pass", summary="All criteria are covered"),
    )
    job = make_job("qa")
    result = await run_agent(job)
    assert result.status is Verdict.PASS, result.summary
    run = result.test_run
    assert run is not None
    assert run.passed
    assert run.exit_code == 0
    assert run.failed_tests == []
    assert run.command == PYTEST
    assert "2 passed" in run.output_tail
    assert run.duration_ms > 0
    assert log_subjects(workspace)[0] == "T-002: Add tests for add price parser"
    assert result.files_changed == ["tests/test_more.py"]
    assert len(result.commits) == 1
    assert f"Workflow-Job: {job.idempotency_key}" in git(workspace, "log", "-1", "--format=%B")


async def test_qa_fails_when_a_test_fails_even_if_the_model_says_pass(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("write_file", path="tests/test_edge.py", content=FAILING_TEST),
        Reply.tool("finish", status="pass", summary="Looks good to me"),
    )
    result = await run_agent(make_job("qa"))
    assert result.status is Verdict.FAIL
    run = result.test_run
    assert run is not None
    assert not run.passed
    assert run.exit_code == 1
    assert run.failed_tests == ["tests/test_edge.py::test_currency_suffix", "tests/test_edge.py::test_euro"]
    assert "tests/test_edge.py::test_euro" in result.summary
    assert "2 failed, 2 passed" in result.summary
    # The failing tests are committed: they are DEV's reproduction.
    assert result.files_changed == ["tests/test_edge.py"]


async def test_qa_fails_when_the_agent_fails_even_if_tests_pass(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    fake.queue(Reply.tool("finish", status="fail", summary="Criterion 2 (ValueError) is not implemented"))
    result = await run_agent(make_job("qa"))
    assert result.status is Verdict.FAIL
    assert result.test_run is not None
    assert result.test_run.passed
    assert "Criterion 2 (ValueError) is not implemented" in result.summary
    assert not result.escalate


async def test_no_tests_collected_is_a_failure(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, tmp_path: Path
) -> None:
    empty = make_repo(tmp_path / "empty", {"app.py": "X = 1\n"})
    project = ProjectRef(slug="listsnap", name="ListSnap", workspace=str(empty), test_command=PYTEST)
    fake.queue(Reply.tool("finish", status="pass", summary="ok"))
    result = await run_agent(make_job("qa", project=project))
    assert result.status is Verdict.FAIL
    assert result.test_run is not None
    assert result.test_run.exit_code == 5
    assert "no tests were collected" in result.summary


async def test_testing_stage_runs_the_suite_and_says_e2e_is_skipped(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    fake.queue(Reply.tool("finish", status="pass", summary="Suite covers the listing flow"))
    result = await run_agent(make_job("testing"))
    assert result.status is Verdict.PASS
    assert result.test_run is not None
    assert result.test_run.passed
    assert result.skipped == "skipped: no E2E command configured"
    assert result.summary.startswith("skipped: no E2E command configured")
    assert {t["function"]["name"] for t in fake.requests[0]["tools"]} == {
        "list_files",
        "read_file",
        "search",
        "run",
        "finish",
    }


async def test_run_tests_streams_lines_and_handles_missing_commands_and_timeouts(workspace: Path) -> None:
    lines: list[str] = []

    async def on_line(line: str) -> None:
        lines.append(line)

    sandbox = HostSandbox(SandboxConfig(backend="none"), workspace)
    ok = await run_tests(sandbox, PYTEST, limit_seconds=60, on_line=on_line)
    assert ok.run.passed
    assert any("1 passed" in ln for ln in lines)
    missing = await run_tests(sandbox, "no-such-test-runner --all", limit_seconds=5)
    assert not missing.run.passed
    assert missing.run.exit_code == 127  # the shell's "not found"
    assert "could not start" in missing.description
    slow = await run_tests(sandbox, f"{sys.executable} -c 'import time; time.sleep(30)'", limit_seconds=0.5)
    assert slow.run.timed_out
    assert not slow.run.passed
    assert "timed out" in slow.description
