"""Which queued tasks to start now: priority first (10 is most urgent), then the stage furthest along
(finish work before starting new), then age; never past a stage's WIP limit or a project's slots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from wf_common.config import PipelineConfig

from wf_orchestrator.pipeline.model import Candidate, Load


def free_slots(pipeline: PipelineConfig, load: Load) -> dict[str, int]:
    """Free WIP slots of every agent stage that has any."""
    free = {s.name: s.wip_limit - load.by_stage.get(s.name, 0) for s in pipeline.stages if s.agent}
    return {name: n for name, n in free.items() if n > 0}


def full_projects(load: Load, max_per_project: int) -> set[int]:
    return {p for p, n in load.by_project.items() if n >= max_per_project}


def select(
    pipeline: PipelineConfig,
    candidates: Sequence[Candidate],
    free: Mapping[str, int],
    load: Load,
    *,
    paused: bool = False,
) -> list[Candidate]:
    """The candidates to dispatch, in dispatch order. `free` and `load` are not modified."""
    if paused:
        return []
    rank = {s.name: i for i, s in enumerate(pipeline.stages)}
    ordered = sorted(candidates, key=lambda c: (-c.priority, -rank.get(c.stage, 0), c.order))
    slots = dict(free)
    per_project = dict(load.by_project)
    limit = pipeline.max_parallel_per_project
    chosen: list[Candidate] = []
    for c in ordered:
        if slots.get(c.stage, 0) <= 0 or per_project.get(c.project_id, 0) >= limit:
            continue
        slots[c.stage] -= 1
        per_project[c.project_id] = per_project.get(c.project_id, 0) + 1
        chosen.append(c)
    return chosen


def after(load: Load, chosen: Sequence[Candidate]) -> Load:
    """The load once `chosen` run too."""
    by_stage = dict(load.by_stage)
    by_project = dict(load.by_project)
    for c in chosen:
        by_stage[c.stage] = by_stage.get(c.stage, 0) + 1
        by_project[c.project_id] = by_project.get(c.project_id, 0) + 1
    return Load(by_stage, by_project)


def timed_out(
    started_at: datetime | None, timeout_seconds: float, margin_seconds: float, now: datetime
) -> bool:
    """A started execution is overdue once it ran its stage's timeout plus a margin (runners enforce the
    timeout themselves; the margin leaves them time to report)."""
    if started_at is None:
        return False
    return now - started_at > timedelta(seconds=timeout_seconds + margin_seconds)
