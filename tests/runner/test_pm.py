"""PM: structured output validated against the published breakdown schema, retries, escalation."""

from __future__ import annotations

import json
from pathlib import Path

from wf_agent_runner.llm.schema import wire_schema
from wf_common.jobs import Job, TaskRef, breakdown_json_schema
from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.conftest import AgentRunner, JobFactory
from tests.runner.helpers import git, last_message, log_subjects

BREAKDOWN = {
    "tasks": [
        {
            "title": "Add price parser",
            "description": "Parse '$1,234.50' style prices.",
            "acceptance_criteria": ["'$1,234.50' parses to 1234.5"],
            "priority": 8,
            "depends_on": [],
        },
        {
            "title": "Show prices in listings",
            "description": "Use the parser in the listing view.",
            "acceptance_criteria": ["listing shows the parsed price"],
            "priority": 5,
            "depends_on": [0],
        },
    ]
}
IDEA = "Mobile app that photographs items for marketplace listings"


def pm_job(make_job: JobFactory, **kw: object) -> Job:
    idea = TaskRef(key="T-001", title="ListSnap", description=IDEA)
    return make_job("pm", task=idea, idea=IDEA, **kw)


async def test_valid_breakdown_passes_and_is_committed_as_tasks_json(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(Reply.json(BREAKDOWN))
    result = await run_agent(pm_job(make_job))
    assert result.status is Verdict.PASS, result.summary
    assert result.breakdown is not None
    assert [t.title for t in result.breakdown.tasks] == [
        "Add price parser",
        "Show prices in listings",
    ]
    assert result.breakdown.tasks[1].depends_on == [0]
    # The model was asked for the published schema (without the bounds a grammar cannot take; the
    # reply is validated against the full schema), with no tools.
    assert fake.requests[0]["format"] == wire_schema(breakdown_json_schema())
    assert "maxLength" not in json.dumps(
        fake.requests[0]["format"]["$defs"]["PlannedTask"]["properties"]["description"]
    )
    assert "tools" not in fake.requests[0]
    doc = json.loads((workspace / ".workflow" / "tasks.json").read_text())
    assert doc["idea"]["text"] == IDEA
    assert doc["idea"]["key"] == "T-001"
    assert doc["tasks"] == BREAKDOWN["tasks"]
    assert log_subjects(workspace)[0] == "PM: task breakdown for T-001"
    assert result.commits == [git(workspace, "rev-parse", "HEAD")]
    assert result.files_changed == [".workflow/tasks.json"]
    assert result.usage.llm_calls == 1
    assert result.usage.completion_tokens > 0
    assert result.usage.model == "qwen2.5-coder:0.5b"


async def test_invalid_twice_then_valid_passes_and_feeds_the_error_back(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    bad_priority = {"tasks": [{**BREAKDOWN["tasks"][0], "priority": 42}]}
    fenced = Reply.text(f"```json\n{json.dumps(BREAKDOWN)}\n```")  # a fence is tolerated
    fake.queue(Reply.text("Sure! Here are the tasks:"), Reply.json(bad_priority), fenced)
    result = await run_agent(pm_job(make_job))
    assert result.status is Verdict.PASS
    assert result.breakdown is not None
    assert len(fake.requests) == 3
    assert result.usage.llm_calls == 3
    first_error = last_message(fake.requests[1])
    assert first_error["role"] == "user"
    assert "no JSON object with a task list" in first_error["content"]
    second_error = last_message(fake.requests[2])
    assert "tasks.0.priority" in second_error["content"]
    assert "less than or equal to 10" in second_error["content"]
    # The invalid answer itself is in the history, so the model sees what it got wrong.
    assert fake.requests[2]["messages"][-2] == {"role": "assistant", "content": json.dumps(bad_priority)}


async def test_always_invalid_fails_and_escalates_with_the_last_error(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(*[Reply.json({"tasks": []}) for _ in range(3)])
    result = await run_agent(pm_job(make_job, schema_retries=2))
    assert result.status is Verdict.FAIL
    assert result.escalate
    assert "after 3 attempts" in result.summary
    assert "tasks: List should have at least 1 item" in result.summary
    assert result.breakdown is None
    assert len(fake.requests) == 3
    assert not (workspace / ".workflow" / "tasks.json").exists()


async def test_redelivered_pm_job_returns_the_committed_breakdown(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(Reply.json(BREAKDOWN))
    job = pm_job(make_job)
    first = await run_agent(job)
    again = await run_agent(job)  # no reply queued: the model must not be asked again
    assert again.status is Verdict.PASS
    assert again.breakdown == first.breakdown
    assert again.commits == first.commits
    assert len(fake.requests) == 1
    assert log_subjects(workspace).count("PM: task breakdown for T-001") == 1
