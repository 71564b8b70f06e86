"""Budgets stop new work: a task or project over its token or money cap goes to needs_human with a
reason naming the budget, and the executions' ledger columns carry the tokens and money."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from wf_common.jobs import Job, Usage

from tests.orchestrator.conftest import config
from tests.orchestrator.hub import Hub

ADD = {"title": "Add function add", "description": "add(a, b)", "acceptance_criteria": ["ok"], "priority": 5}


async def first_dev_job(hub: Hub) -> Job:
    await hub.cmd("submit_idea", project="demo", text="Calculator")
    pm = await hub.next_job("pm")
    await hub.breakdown(pm, ADD)
    await hub.wait_state("T-001", "pm", "awaiting_approval")
    await hub.cmd("approve", project="demo", task_key="T-001", actor="alice")
    return await hub.next_job("dev")


async def test_task_token_budget_holds_the_next_stage(make_hub: Callable[..., Any], tmp_path: Path) -> None:
    hub: Hub = await make_hub(config(cost={"budgets": {"task_tokens": 1000}}))
    await hub.project("demo", tmp_path / "demo")
    dev = await first_dev_job(hub)

    usage = Usage(model="qwen2.5-coder:7b", llm_calls=3, prompt_tokens=900, completion_tokens=250)
    await hub.finish(dev, usage=usage)

    task = await hub.wait_state("T-002", "qa", "needs_human")
    assert task["status_reason"] == (
        "task token budget reached: 1,150 tokens of 1,000 used; "
        "raise cost.budgets.task_tokens in config.yaml to let it go on"
    )
    await hub.no_job("qa", wait=0.3)
    (execution,) = [e for e in await hub.executions("T-002") if e["stage"] == "dev"]
    assert (execution["prompt_tokens"], execution["completion_tokens"]) == (900, 250)
    assert execution["model"] == "qwen2.5-coder:7b"
    assert execution["cost_usd"] is None  # not priced


async def test_project_money_budget_holds_other_tasks(make_hub: Callable[..., Any], tmp_path: Path) -> None:
    hub: Hub = await make_hub(config(cost={"budgets": {"project_usd": 0.05}}))
    await hub.project("demo", tmp_path / "demo")
    dev = await first_dev_job(hub)

    await hub.finish(
        dev, usage=Usage(model="gpt-4o", prompt_tokens=10_000, completion_tokens=2_000, cost_usd=0.06)
    )

    task = await hub.wait_state("T-002", "qa", "needs_human")
    assert task["status_reason"].startswith("project money budget reached: $0.0600 of $0.05 used")
    (execution,) = [e for e in await hub.executions("T-002") if e["stage"] == "dev"]
    assert float(execution["cost_usd"]) == 0.06


async def test_without_budgets_work_goes_on(hub: Hub) -> None:
    dev = await first_dev_job(hub)
    await hub.finish(dev, usage=Usage(prompt_tokens=10**9, completion_tokens=10**9))
    assert (await hub.next_job("qa")).task.key == "T-002"
