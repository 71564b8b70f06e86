"""Runner settings from the environment, and output coalescing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from wf_agent_runner.agents.base import commit_subject
from wf_agent_runner.gitrepo import commit_message
from wf_agent_runner.output import OutputSink, Transcript
from wf_agent_runner.settings import RunnerSettings
from wf_common.errors import ConfigError
from wf_common.events import AgentOutputKind

from tests.runner.conftest import JobFactory


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WF_CONFIG", "WF_STAGES", "WF_CONCURRENCY", "WF_RUNNER_ID"):
        monkeypatch.delenv(name, raising=False)


def test_stages_come_from_wf_stages_as_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WF_STAGES", "dev, qa")
    monkeypatch.setenv("WF_CONCURRENCY", "3")
    monkeypatch.setenv("WF_RUNNER_ID", "laptop:runner 1")
    s = RunnerSettings()
    assert s.served_stages() == ["dev", "qa"]
    assert s.concurrency == 3
    assert s.runner_id == "laptop-runner-1"  # made safe as a KV key


def test_default_stages_are_every_agent_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RunnerSettings().served_stages() == ["pm", "dev", "qa", "sec", "docs", "testing"]
    monkeypatch.setenv("WF_STAGES", "all")
    assert RunnerSettings().served_stages() == ["pm", "dev", "qa", "sec", "docs", "testing"]


def test_unknown_stage_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WF_STAGES", "dev,deploy")
    with pytest.raises(ConfigError, match=r"unknown stage\(s\) \['deploy'\]"):
        RunnerSettings().served_stages()


async def test_tokens_are_coalesced_but_nothing_is_lost(make_job: JobFactory, tmp_path: Path) -> None:
    published: list[tuple[str, str]] = []

    class Recording(OutputSink):
        async def _publish(self, kind: AgentOutputKind, text: str) -> None:
            published.append((kind, text))

    sink = Recording(None, make_job("dev"), actor="t", transcript=Transcript(tmp_path / "t.jsonl"))
    for _ in range(100):
        await sink.token("abc ")  # 400 chars: two flushes by size
    await sink.token("tail")
    assert [k for k, _ in published] == ["token", "token"]
    deadline = asyncio.get_running_loop().time() + 10
    while "".join(t for _, t in published) != "abc " * 100 + "tail":  # the rest is flushed by time
        assert asyncio.get_running_loop().time() < deadline, published
        await asyncio.sleep(0.02)
    await sink.emit("tool_call", "read_file({})")
    await sink.aclose()
    assert published[-1] == ("tool_call", "read_file({})")
    assert (tmp_path / "t.jsonl").read_text().count("tool_call") == 1
    assert (tmp_path / ".gitignore").read_text() == "*\n"


def test_commit_subjects() -> None:
    assert commit_subject("T-002", "Add price parser.\n\nMore", "x") == "T-002: Add price parser"
    assert commit_subject("T-002", "## T-002: Add parser", "x") == "T-002: Add parser"
    assert commit_subject("T-002", "", "Fallback title") == "T-002: Fallback title"
    msg = commit_message("T-002: " + "y" * 100, "body", "p/T-002/dev/1")
    assert len(msg.splitlines()[0]) <= 72
    assert msg.endswith("\n\nWorkflow-Job: p/T-002/dev/1\n")
