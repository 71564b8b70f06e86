"""Dispatch order and limits, and the other pure helpers (timeouts, dependency cycles)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from wf_common.config import PipelineConfig, StageConfig
from wf_orchestrator.pipeline import find_cycle, selection
from wf_orchestrator.pipeline.model import Candidate, Load

P = PipelineConfig(max_parallel_per_project=10)


def c(tid: int, stage: str = "dev", priority: int = 5, project: int = 1) -> Candidate:
    return Candidate(tid, project, stage, priority, (tid,))


def picked(*args: Any, **kw: Any) -> list[int]:
    return [x.task_id for x in selection.select(*args, **kw)]


def test_higher_priority_goes_first_then_the_older_task() -> None:
    cands = [c(1, priority=3), c(2, priority=9), c(3, priority=9)]
    assert picked(P, cands, {"dev": 10}, Load()) == [2, 3, 1]


def test_a_stage_never_runs_more_than_its_wip_limit() -> None:
    pipeline = PipelineConfig(
        stages=[
            StageConfig(name="pm", agent="pm", gate=True),
            StageConfig(name="dev", agent="dev", wip_limit=2),
        ],
        max_parallel_per_project=10,
    )
    free = selection.free_slots(pipeline, Load(by_stage={"dev": 1}))
    assert free == {"pm": 4, "dev": 1}
    assert picked(pipeline, [c(1), c(2), c(3)], free, Load(by_stage={"dev": 1})) == [1]
    assert selection.free_slots(pipeline, Load(by_stage={"dev": 2, "pm": 4})) == {}


def test_one_project_runs_three_jobs_at_a_time_by_default() -> None:
    pipeline = PipelineConfig()  # each task has its own worktree, so a project's tasks run side by side
    cands = [c(1, project=1), c(2, project=1), c(3, project=1), c(4, project=1), c(5, project=2)]
    assert picked(pipeline, cands, {"dev": 10}, Load()) == [1, 2, 3, 5]
    busy = Load(by_stage={"qa": 2}, by_project={1: 2})
    assert picked(pipeline, cands, {"dev": 10}, busy) == [1, 5]
    assert selection.full_projects(busy, 2) == {1}


def test_on_a_tie_the_task_further_along_the_pipeline_goes_first() -> None:
    cands = [c(1, stage="dev"), c(2, stage="qa")]
    assert picked(PipelineConfig(max_parallel_per_project=1), cands, {"dev": 4, "qa": 4}, Load()) == [2]


def test_nothing_is_dispatched_while_paused() -> None:
    assert picked(P, [c(1)], {"dev": 4}, Load(), paused=True) == []


def test_after_adds_the_chosen_jobs_to_the_load() -> None:
    load = selection.after(Load({"dev": 1}, {1: 1}), [c(5, project=2)])
    assert load == Load({"dev": 2}, {1: 1, 2: 1})


def test_an_execution_is_overdue_after_its_timeout_plus_the_margin() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert not selection.timed_out(now - timedelta(seconds=100), 90, 30, now)
    assert selection.timed_out(now - timedelta(seconds=121), 90, 30, now)
    assert not selection.timed_out(None, 1, 0, now), "a job no runner started yet has no clock"


def test_blocked_by_cycles_are_found_with_their_path() -> None:
    edges = {2: [3], 3: [4], 4: []}
    assert find_cycle(edges, 4, [2]) == [4, 2, 3, 4]
    assert find_cycle(edges, 1, [2]) is None
    assert find_cycle({}, 1, [1]) == [1, 1]
