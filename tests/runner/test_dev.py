"""DEV: the tool loop (tool errors, nudge, turn cap), commits with the job trailer, idempotent redelivery."""

from __future__ import annotations

import json
from pathlib import Path

from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.conftest import AgentRunner, JobFactory
from tests.runner.helpers import PRICES, git, last_message, log_subjects

NEW_PRICES = PRICES.replace(
    '    return float(text.replace("$", "").replace(",", ""))', "    raise NotImplementedError"
)
SUMMARY = "Add price parser\n\nParses '$1,234.50' into 1234.5 and rejects bad input."


async def test_dev_writes_and_commits_with_the_job_trailer(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("list_files", path="."),
        Reply.tool("write_file", path="app/prices.py", content=NEW_PRICES),
        Reply.tool("write_file", path="docs/prices.md", content="# Prices\n"),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    job = make_job("dev")
    result = await run_agent(job)
    assert result.status is Verdict.PASS
    # It never called run: the runner ran the tests and says so.
    assert result.summary.startswith(SUMMARY + "\n\nDEV finished without running the tests; the runner ran")
    assert result.test_run is not None
    head = git(workspace, "rev-parse", "HEAD")
    assert result.commits == [head]
    assert sorted(result.files_changed) == ["app/prices.py", "docs/prices.md"]
    message = git(workspace, "log", "-1", "--format=%B")
    assert message.splitlines()[0] == "T-002: Add price parser"
    assert "Parses '$1,234.50' into 1234.5" in message
    assert message.count("Add price parser") == 1
    assert message.splitlines()[-1] == f"Workflow-Job: {job.idempotency_key}"
    assert git(workspace, "log", "-1", "--format=%an") == "Workflow Hub DEV agent"
    # Only the agent's files: the transcript it wrote meanwhile is not committed, the tree is clean.
    assert git(workspace, "status", "--porcelain") == ""
    assert result.usage.llm_calls == 4
    assert result.usage.prompt_tokens > 0
    # The model saw the tool definitions and the tool results.
    assert {t["function"]["name"] for t in fake.requests[0]["tools"]} == {
        "list_files",
        "read_file",
        "search",
        "write_file",
        "edit_file",
        "run",
        "finish",
    }
    listing = last_message(fake.requests[1])
    assert listing["role"] == "tool"
    assert listing["tool_name"] == "list_files"
    assert "app/prices.py" in listing["content"]


async def test_redelivered_dev_job_does_not_commit_twice(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("write_file", path="app/prices.py", content=NEW_PRICES),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    job = make_job("dev")
    first = await run_agent(job)
    second = await run_agent(job)  # same idempotency key, nothing queued for the model
    assert second.status is Verdict.PASS
    assert second.commits == first.commits
    assert second.files_changed == ["app/prices.py"]
    assert len(fake.requests) == 2
    assert log_subjects(workspace) == ["T-002: Add price parser", "Initial commit"]
    # A new attempt (rework) is a new job and commits again.
    fake.queue(
        Reply.tool("edit_file", path="app/prices.py", old="NotImplementedError", new="ValueError"),
        Reply.tool("finish", status="pass", summary="T-002: Raise ValueError for bad prices"),
    )
    third = await run_agent(make_job("dev", attempt=2))
    assert third.commits
    assert third.commits != first.commits
    assert log_subjects(workspace)[0] == "T-002: Raise ValueError for bad prices"


async def test_tool_errors_go_back_to_the_model(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("read_file", path="../../etc/passwd"),
        Reply.tool("edit_file", path="app/prices.py", old="nope", new="x"),
        Reply(tool_calls=[("write_file", {"path": ".git/hooks/pre-commit", "content": "x"})]),
        Reply.tool("finish", status="pass", summary="Nothing to change"),
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert result.commits == []
    assert result.files_changed == []
    errors = [last_message(r) for r in fake.requests[1:4]]
    assert all(m["role"] == "tool" and m["content"].startswith("error:") for m in errors)
    assert "outside the workspace" in errors[0]["content"]
    assert "occurs 0 times" in errors[1]["content"]
    assert ".git/" in errors[2]["content"]


async def test_turn_cap_fails_with_a_clear_summary(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    fake.queue(*[Reply.tool("list_files", path=".") for _ in range(5)])
    result = await run_agent(make_job("dev", max_turns=3))
    assert result.status is Verdict.FAIL
    assert result.summary == "agent did not finish within 3 turns"
    assert result.escalate
    assert len(fake.requests) == 3
    assert fake.pending == 2
    # The last turn offers only finish and says so; the list_files it asked for anyway was not run.
    last = fake.requests[-1]
    assert [t["function"]["name"] for t in last["tools"]] == ["finish"]
    assert "last turn: call finish now" in last_message(last)["content"]
    assert len([m for m in last["messages"] if m["role"] == "tool"]) == 2


async def test_the_same_change_made_twice_gets_a_turn_that_offers_only_finish(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    # What Qwen2.5-Coder 0.5B does when it is done: it writes the same file with the same content again.
    write = Reply.tool("write_file", path="calc/add.py", content="def add(a, b):\n    return a + b\n")
    fake.queue(write, write, Reply.tool("finish", status="pass", summary="Add add"))
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert "calc/add.py" in result.files_changed
    first, second, third = fake.requests
    assert len(first["tools"]) == len(second["tools"]) > 1
    assert [t["function"]["name"] for t in third["tools"]] == ["finish"]
    assert "made exactly this change already" in last_message(third)["content"]


async def test_the_same_look_twice_gets_a_turn_that_offers_only_the_tools_that_act(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    look = Reply.tool("list_files", path=".")
    fake.queue(look, look, Reply.tool("finish", status="fail", summary="Which file?"))
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.FAIL
    third = fake.requests[2]
    offered = {t["function"]["name"] for t in third["tools"]}
    assert "finish" in offered
    assert "write_file" in offered
    assert not offered & {"list_files", "read_file", "search"}
    assert "already looked at exactly this" in last_message(third)["content"]


async def test_a_reply_without_tool_call_is_nudged_once(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    fake.queue(Reply.text("I have looked at it."), Reply.tool("finish", status="pass", summary="Add nothing"))
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert result.usage.llm_calls == 2
    nudge = last_message(fake.requests[1])
    assert nudge["role"] == "user"
    assert "call finish(status, summary)" in nudge["content"]

    fake.queue(
        Reply.text("Done."), Reply.text("Really done."), Reply.tool("finish", status="pass", summary="x")
    )
    stubborn = await run_agent(make_job("dev", attempt=2))
    assert stubborn.status is Verdict.FAIL
    assert "without calling finish" in stubborn.summary
    assert fake.pending == 1  # stopped after the second plain reply


async def test_finish_fail_escalates_without_committing(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("write_file", path="app/draft.py", content="x = 1\n"),
        Reply.tool("finish", status="fail", summary="Should prices be Decimal or float?"),
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.FAIL
    assert result.escalate
    assert result.summary == "Should prices be Decimal or float?"
    assert result.commits == []
    assert log_subjects(workspace) == ["Initial commit"]


async def test_transcript_is_written_as_json_lines(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.text("Thinking about prices"), Reply.tool("finish", status="pass", summary="Add nothing")
    )
    await run_agent(make_job("dev"))
    path = workspace / ".workflow" / "agent_logs" / "T-002-dev-1.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds[:2] == ["prompt", "assistant"]
    assert "tool_call" in kinds
    assert "tool_result" in kinds
    assert records[0]["system"].startswith("# Agent Coding Standards")
    assert records[1]["content"] == "Thinking about prices"
