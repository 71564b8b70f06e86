"""The workflow state machine: pure functions from (pipeline, task facts, input) to a `Decision`.

Handoff rows are written for movements between stages and for gate requests/decisions; a state change
inside a stage (running → failed, needs_human → queued on retry) writes none, so the last handoff stays
what the next job of that stage must read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from wf_common.config import ENTRY_STAGE, FINAL_STAGE, PipelineConfig
from wf_common.errors import CommandError
from wf_common.jobs import PlannedTask
from wf_common.states import RETRYABLE_STATES, ExecutionStatus, TaskState, Verdict

from wf_orchestrator.pipeline.model import Decision, Handoff, NewBug, Place, ResultFacts, TaskFacts

TITLE_MAX = 120
BUG_TITLE_MAX = 255


def first_line(text: str, limit: int) -> str:
    """The first non-empty line of `text`, cut to `limit` characters (with an ellipsis when cut)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def describe(stage: str, state: str) -> str:
    """'running in dev', 'awaiting approval in deploy', 'done': how messages name where a task is."""
    words = state.replace("_", " ")
    return (
        words
        if stage in (FINAL_STAGE, ENTRY_STAGE) and state in ("done", "cancelled")
        else (f"{words} in {stage}")
    )


def arrive(pipeline: PipelineConfig, stage: str, blockers_done: bool) -> Place:
    """Where a task that enters `stage` stands: done, at a gate without agent, or in its queue."""
    if stage == FINAL_STAGE:
        return Place(FINAL_STAGE, TaskState.DONE)
    cfg = pipeline.stage(stage)
    if cfg is None:
        raise ValueError(f"unknown stage {stage!r}")
    if cfg.agent is None:
        return Place(stage, TaskState.AWAITING_APPROVAL)
    return Place(stage, TaskState.QUEUED if blockers_done else TaskState.BLOCKED)


def first_work_stage(pipeline: PipelineConfig) -> str:
    return pipeline.work_stages[0] if pipeline.work_stages else FINAL_STAGE


# ---------------------------------------------------------------------------------------------- ideas


def submit_idea(pipeline: PipelineConfig) -> Decision:
    """A new idea is created in backlog and handed straight to the PM."""
    pm = pipeline.stages[0].name
    return Decision(
        place=Place(pm, TaskState.QUEUED),
        handoff=Handoff(ENTRY_STAGE, pm, {"source": "human"}, notes="idea submitted"),
    )


def idea_finished(child_states: Iterable[str]) -> bool:
    """An idea is done when every child that was not cancelled is done (and at least one is)."""
    live = [s for s in child_states if s != TaskState.CANCELLED]
    return bool(live) and all(s == TaskState.DONE for s in live)


# -------------------------------------------------------------------------------------------- results


def on_result(
    pipeline: PipelineConfig, task: TaskFacts, result: ResultFacts, breakdown: Sequence[PlannedTask] = ()
) -> Decision:
    """Apply a runner's verdict for the task's current stage."""
    if result.status == Verdict.ERROR:
        reason = result.error_message or result.summary or "the job could not run"
        return Decision(
            place=Place(task.stage, TaskState.FAILED, reason), execution_status=ExecutionStatus.FAILED
        )
    if result.status == Verdict.PASS:
        return _on_pass(pipeline, task, result, breakdown)
    return _on_fail(pipeline, task, result)


def _on_pass(
    pipeline: PipelineConfig, task: TaskFacts, result: ResultFacts, breakdown: Sequence[PlannedTask]
) -> Decision:
    stage = pipeline.stage(task.stage)
    if not (stage is not None):
        raise RuntimeError(f"task {task.key} is in unknown stage {task.stage!r}")
    nxt = pipeline.next_stage(stage.name)
    done = ExecutionStatus.COMPLETED
    if task.is_idea and stage.name == pipeline.stages[0].name:
        if not breakdown:
            return Decision(
                place=Place(stage.name, TaskState.NEEDS_HUMAN, "the PM passed without a task breakdown"),
                execution_status=done,
            )
        # The breakdown waits for a human; approving it releases the drafts into the first work stage.
        return Decision(
            place=Place(stage.name, TaskState.AWAITING_APPROVAL),
            handoff=Handoff(
                stage.name,
                first_work_stage(pipeline),
                result.handoff,
                notes=f"breakdown into {len(breakdown)} task(s)",
                requires_approval=True,
            ),
            execution_status=done,
            children=tuple(breakdown),
            approval_requested=True,
            fix_bugs_of_stage=stage.name,
        )
    if stage.gate:
        return Decision(
            place=Place(stage.name, TaskState.AWAITING_APPROVAL),
            handoff=Handoff(
                stage.name, nxt, result.handoff, notes=first_line(result.summary, 200), requires_approval=True
            ),
            execution_status=done,
            approval_requested=True,
            fix_bugs_of_stage=stage.name,
        )
    place = arrive(pipeline, nxt, task.blockers_done)
    gate = place.state == TaskState.AWAITING_APPROVAL
    return Decision(
        place=place,
        handoff=Handoff(
            stage.name, nxt, result.handoff, notes=first_line(result.summary, 200), requires_approval=gate
        ),
        execution_status=done,
        approval_requested=gate,
        fix_bugs_of_stage=stage.name,
        completed=place.state == TaskState.DONE,
    )


def _on_fail(pipeline: PipelineConfig, task: TaskFacts, result: ResultFacts) -> Decision:
    stage = pipeline.stage(task.stage)
    if not (stage is not None):
        raise RuntimeError(f"task {task.key} is in unknown stage {task.stage!r}")
    done = ExecutionStatus.COMPLETED
    summary = result.summary.strip() or f"{stage.name} failed"
    if result.escalate:
        return Decision(place=Place(stage.name, TaskState.NEEDS_HUMAN, summary), execution_status=done)
    if stage.on_fail is None:
        return Decision(place=Place(stage.name, TaskState.NEEDS_HUMAN, summary), execution_status=done)
    bug = NewBug(
        title=first_line(summary, BUG_TITLE_MAX),
        description=summary,
        source_stage=stage.name,
        reproduction=result.reproduction,
        attachment=result.full_output or None,
        files=result.files,
    )
    if task.rework_count >= pipeline.rework_limit:
        reason = (
            f"rework limit ({pipeline.rework_limit}) reached; last failure in {stage.name}: "
            + first_line(summary, 200)
        )
        return Decision(
            place=Place(stage.name, TaskState.NEEDS_HUMAN, reason), bug=bug, execution_status=done
        )
    back = arrive(pipeline, stage.on_fail, task.blockers_done)
    return Decision(
        place=back,
        handoff=Handoff(stage.name, stage.on_fail, result.handoff, notes=first_line(summary, 200)),
        bug=bug,
        execution_status=done,
        rework_count=task.rework_count + 1,
    )


# ---------------------------------------------------------------------------------------------- gates


def _require_gate(task: TaskFacts) -> None:
    if task.state != TaskState.AWAITING_APPROVAL:
        raise CommandError(
            "conflict", f"{task.key} is not waiting for approval (it is {describe(task.stage, task.state)})"
        )


def is_breakdown_gate(pipeline: PipelineConfig, task: TaskFacts) -> bool:
    return task.is_idea and task.stage == pipeline.stages[0].name


def on_approve(pipeline: PipelineConfig, task: TaskFacts, pending: dict[str, Any], note: str) -> Decision:
    """A human approves the task waiting at its gate. `pending` is the gate's handoff payload.

    The breakdown gate puts the idea in waiting_subtasks (its drafts are released with
    `release_draft`); a gate without agent (deploy) moves on with a new, approved handoff; a gated agent
    stage moves to the stage its pending handoff named.
    """
    _require_gate(task)
    if is_breakdown_gate(pipeline, task):
        return Decision(place=Place(task.stage, TaskState.WAITING_SUBTASKS))
    stage = pipeline.stage(task.stage)
    if not (stage is not None):
        raise RuntimeError("invariant broken: stage is not None")
    nxt = pipeline.next_stage(stage.name)
    place = arrive(pipeline, nxt, task.blockers_done)
    gate = place.state == TaskState.AWAITING_APPROVAL
    handoff = None
    if stage.agent is None:
        payload = dict(pending)
        if note:
            payload["approval_note"] = note
        handoff = Handoff(
            stage.name, nxt, payload, notes=note or "approved", approved=True, requires_approval=gate
        )
    return Decision(
        place=place, handoff=handoff, approval_requested=gate, completed=place.state == TaskState.DONE
    )


def release_draft(pipeline: PipelineConfig, child: TaskFacts, idea_key: str) -> Decision:
    """A draft of an approved breakdown enters the first work stage (blocked until its blockers are done)."""
    first = first_work_stage(pipeline)
    return Decision(
        place=arrive(pipeline, first, child.blockers_done),
        handoff=Handoff(
            ENTRY_STAGE,
            first,
            {"source": "breakdown", "idea": idea_key},
            notes=f"breakdown of {idea_key} approved",
        ),
    )


def hook_task(pipeline: PipelineConfig, hook: str) -> Decision:
    """A task an inbound webhook created (`wf hook create --action task`) enters the first work stage."""
    first = first_work_stage(pipeline)
    return Decision(
        place=arrive(pipeline, first, True),
        handoff=Handoff(
            ENTRY_STAGE, first, {"source": "hook", "hook": hook}, notes=f"created by hook {hook}"
        ),
    )


def on_reject(pipeline: PipelineConfig, task: TaskFacts, reason: str) -> Decision:
    """A human rejects: the breakdown goes back to the PM, anything else back to the first work stage."""
    _require_gate(task)
    payload: dict[str, Any] = {"rejected": {"stage": task.stage, "reason": reason}}
    if is_breakdown_gate(pipeline, task):
        return Decision(
            place=Place(task.stage, TaskState.QUEUED),
            handoff=Handoff(
                task.stage, task.stage, payload, notes="breakdown rejected: " + first_line(reason, 200)
            ),
        )
    first = first_work_stage(pipeline)
    return Decision(
        place=arrive(pipeline, first, task.blockers_done),
        handoff=Handoff(task.stage, first, payload, notes="rejected: " + first_line(reason, 200)),
    )


def cancel_draft(child: TaskFacts, idea_key: str) -> Decision:
    return Decision(
        place=Place(child.stage, TaskState.CANCELLED, f"the breakdown of {idea_key} was rejected")
    )


# -------------------------------------------------------------------------------------- other inputs


def on_retry(pipeline: PipelineConfig, task: TaskFacts) -> Decision:
    """failed / needs_human → queued again in the same stage; a human's retry restarts the rework count."""
    if task.state not in RETRYABLE_STATES:
        raise CommandError(
            "conflict",
            f"{task.key} cannot be retried: it is {describe(task.stage, task.state)} "
            "(only failed or needs_human tasks can be retried)",
        )
    place = arrive(pipeline, task.stage, task.blockers_done)
    reset = 0 if task.state == TaskState.NEEDS_HUMAN and task.rework_count else None
    return Decision(place=place, rework_count=reset)


MOVABLE_STATES = frozenset({TaskState.QUEUED, TaskState.BLOCKED, TaskState.NEEDS_HUMAN, TaskState.FAILED})


def on_move(pipeline: PipelineConfig, task: TaskFacts, to_stage: str) -> Decision:
    """A card dragged by hand. Allowed: back to an earlier work stage (rework), or within its own stage
    (a failed or needs-human task is queued again there). Refused: forward moves (they would skip the
    checks of the stages in between), into backlog or done, past or out of a gate (approve/reject
    decide those), and tasks that are running, drafts, ideas or finished."""
    stages = [s.name for s in pipeline.stages]
    if task.is_idea:
        raise CommandError("conflict", f"{task.key} is an idea: approve or reject its breakdown instead")
    if to_stage not in (*stages, ENTRY_STAGE, FINAL_STAGE):
        raise CommandError("invalid", f"there is no stage {to_stage!r}; the pipeline has {stages}")
    if to_stage == FINAL_STAGE:
        raise CommandError(
            "conflict", f"{task.key} cannot be moved to done by hand: it gets there by passing every stage"
        )
    if to_stage == ENTRY_STAGE:
        raise CommandError("conflict", f"{task.key} cannot be moved back to backlog; move it to a work stage")
    if task.state == TaskState.AWAITING_APPROVAL:
        raise CommandError(
            "conflict",
            f"{task.key} is waiting for approval in {task.stage}: Approve it, or Reject it with a reason",
        )
    if task.state not in MOVABLE_STATES:
        raise CommandError(
            "conflict", f"{task.key} cannot be moved: it is {describe(task.stage, task.state)}"
        )
    if task.stage not in stages:
        raise CommandError("conflict", f"{task.key} is in {task.stage}, which is not a work stage")
    here, there = stages.index(task.stage), stages.index(to_stage)
    if there > here:
        skipped = stages[here:there]
        raise CommandError(
            "conflict",
            f"{task.key} cannot move forward from {task.stage} to {to_stage}: that would skip "
            f"{', '.join(skipped)}; cards move back for rework, and forward by passing their stage",
        )
    target = pipeline.stage(to_stage)
    if target is not None and (target.agent is None or target.gate):
        raise CommandError(
            "conflict", f"{to_stage} is a gate; tasks reach it by passing the stage before, not by hand"
        )
    place = arrive(pipeline, to_stage, task.blockers_done)
    if there == here:
        if task.state in (TaskState.QUEUED, TaskState.BLOCKED):
            return Decision(place=Place(task.stage, task.state))
        return Decision(place=place, rework_count=0 if task.rework_count else None)
    return Decision(
        place=place,
        handoff=Handoff(
            task.stage, to_stage, {"moved": {"from": task.stage, "to": to_stage}}, notes="moved back by hand"
        ),
    )


CANCELLABLE_STATES = MOVABLE_STATES | {TaskState.DRAFT}


def on_cancel(task: TaskFacts, reason: str, waiting: Sequence[str] = ()) -> Decision:
    """Cancel a task that is not running, at a gate or finished. `waiting`: the keys of live tasks
    blocked by it (they would wait forever; they are named so a human can edit their blocked_by)."""
    if task.is_idea:
        raise CommandError("conflict", f"{task.key} is an idea: reject its breakdown instead")
    if task.state == TaskState.AWAITING_APPROVAL:
        raise CommandError(
            "conflict", f"{task.key} is waiting for approval in {task.stage}: Reject it instead"
        )
    if task.state not in CANCELLABLE_STATES:
        raise CommandError(
            "conflict", f"{task.key} cannot be cancelled: it is {describe(task.stage, task.state)}"
        )
    if waiting:
        raise CommandError(
            "conflict",
            f"{task.key} cannot be cancelled: {', '.join(waiting)} wait for it; "
            "take it out of their blocked_by first",
        )
    return Decision(place=Place(task.stage, TaskState.CANCELLED, f"cancelled: {reason}"))


def on_blockers_changed(task: TaskFacts) -> Decision | None:
    """Blocked → queued once every blocker is done; queued → blocked when a new blocker is not."""
    if task.state == TaskState.BLOCKED and task.blockers_done:
        return Decision(place=Place(task.stage, TaskState.QUEUED))
    if task.state == TaskState.QUEUED and not task.blockers_done:
        return Decision(place=Place(task.stage, TaskState.BLOCKED))
    return None


def on_timeout(task: TaskFacts, reason: str) -> Decision:
    return Decision(
        place=Place(task.stage, TaskState.FAILED, reason), execution_status=ExecutionStatus.FAILED
    )


def on_idea_finished(task: TaskFacts) -> Decision:
    return Decision(
        place=Place(FINAL_STAGE, TaskState.DONE),
        handoff=Handoff(
            task.stage, FINAL_STAGE, {"source": "subtasks"}, notes="every task of the idea is done"
        ),
        completed=True,
    )
