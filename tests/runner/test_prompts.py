"""Prompts follow the seed's "How Principles Are Injected": core principles, role principles, task,
criteria, feedback, bugs, project context."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from wf_agent_runner.agents import AGENTS
from wf_agent_runner.principles import CORE_PRINCIPLES, ROLE_PRINCIPLES
from wf_agent_runner.prompts import build_prompt, gather_context
from wf_common.jobs import BugRef, FeedbackRef

from tests.runner.conftest import JobFactory


def test_core_principles_are_the_seed_text() -> None:
    assert CORE_PRINCIPLES.startswith(
        "# Agent Coding Standards\n\nYou are part of an automated development team."
    )
    for heading in (
        "Code Quality",
        "Security First",
        "Testing Requirements",
        "Git Discipline",
        "Performance",
    ):
        assert f"## {heading}\n" in CORE_PRINCIPLES
    assert "- Never commit secrets, .env files, or credentials" in CORE_PRINCIPLES
    assert "- If unsure, ask for clarification rather than guessing" in ROLE_PRINCIPLES["dev"]
    assert set(ROLE_PRINCIPLES) == set(AGENTS) == {"pm", "dev", "qa", "sec", "docs", "testing"}


@pytest.mark.parametrize("role", sorted(ROLE_PRINCIPLES))
async def test_prompt_starts_with_core_then_role_principles(make_job: JobFactory, role: str) -> None:
    job = make_job(role)
    ctx = await gather_context(Path(job.project.workspace), job)
    text = build_prompt(job, ctx, instructions=AGENTS[role].instructions).text
    assert text.startswith(CORE_PRINCIPLES.strip())
    role_at = text.index(ROLE_PRINCIPLES[role].strip())
    assert role_at == len(CORE_PRINCIPLES.strip()) + 2  # right after the core principles
    others = [r for r in ROLE_PRINCIPLES if r != role]
    assert not any(ROLE_PRINCIPLES[r].strip() in text for r in others)
    assert text.index("# Your Task") > role_at


async def test_prompt_has_task_criteria_feedback_bugs_and_context(make_job: JobFactory) -> None:
    job = make_job(
        "dev",
        feedback=[
            FeedbackRef(text="Use Decimal, not float", actor="mz", at=datetime(2025, 1, 2, 3, 4, tzinfo=UTC)),
            FeedbackRef(text="Keep it in app/prices.py", actor="mz", at=datetime(2025, 1, 3, tzinfo=UTC)),
        ],
        bugs=[
            BugRef(
                key="B-001",
                title="Negative prices crash",
                source_stage="qa",
                reproduction={
                    "command": "python -m pytest",
                    "failed_tests": ["tests/test_prices.py::test_negative"],
                    "output_tail": "E   ValueError: could not convert string to float: '-$3'",
                },
            )
        ],
        handoff={"summary": "PM approved the breakdown", "tasks_created": ["T-002"]},
    )
    ctx = await gather_context(Path(job.project.workspace), job)
    prompt = build_prompt(job, ctx, instructions="work")
    user = prompt.user
    order = [
        "# Your Task\n\nT-002: Add price parser",
        "Parse prices like '$1,234.50' into floats.",
        "## Acceptance Criteria\n- '$1,234.50' parses to 1234.5\n- invalid input raises ValueError",
        "## Human Feedback",
        "mz: Use Decimal, not float",
        "mz: Keep it in app/prices.py",
        "## Open Bugs",
        "### B-001: Negative prices crash (found by QA)",
        "Reproduce with: `python -m pytest`",
        "- tests/test_prices.py::test_negative",
        "ValueError: could not convert string to float",
        "## Project Context",
        "PM approved the breakdown",
        "Initial commit",  # git log --oneline
        "app/prices.py",  # file list
        f"`{job.project.test_command}`",
    ]
    at = 0
    for piece in order:  # each after the one before
        found = user.find(piece, at)
        assert found >= 0, f"{piece!r} missing or out of order"
        at = found + len(piece)
    assert prompt.messages()[0] == {"role": "system", "content": prompt.system}
    assert prompt.messages()[1]["content"] == user


async def test_prompt_without_criteria_feedback_or_bugs_says_so(make_job: JobFactory) -> None:
    job = make_job("pm", idea="An app that photographs items for marketplace listings")
    job.task.acceptance_criteria.clear()
    ctx = await gather_context(Path(job.project.workspace), job)
    user = build_prompt(job, ctx, instructions="x").user
    assert "(none given" in user
    assert "## Human Feedback" not in user
    assert "## Open Bugs" not in user
    assert "## Idea\n\nAn app that photographs items" in user


async def test_a_comment_on_a_diff_line_names_its_file_and_line_in_the_prompt(make_job: JobFactory) -> None:
    at = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)
    job = make_job(
        "dev",
        feedback=[
            FeedbackRef(text="Check the types here", actor="mz", at=at, file="calc/add.py", line=2),
            FeedbackRef(text="General note", actor="mz", at=at),
        ],
    )
    ctx = await gather_context(Path(job.project.workspace), job)
    user = build_prompt(job, ctx, instructions="work").user
    assert "- [2025-01-02 03:04] mz on calc/add.py:2: Check the types here" in user
    assert "- [2025-01-02 03:04] mz: General note" in user
