"""Statements of the hot path, written once (no per-call construction) and shaped to save round trips:
every syscall counts when a transition should cost a few milliseconds."""

from __future__ import annotations

from sqlalchemy import JSON, DateTime, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

# One transition of one task, in one round trip: the handoff row (when `with_handoff`; its id reserved
# beforehand so events can name it), the execution's record (when `e_id` is set), the stage's open bugs
# marked fixed (when `fix_stage` is set), the task itself, and outbox rows (when the unit of work has
# nothing else to write). Returns the fixed bugs (as JSON) and the outbox ids by message id.
APPLY = (
    text(
        """
WITH h AS (
  INSERT INTO handoffs (id, task_id, from_execution_id, from_stage, to_stage, payload, notes, actor,
                        requires_approval, approved_at, approved_by)
  SELECT CAST(:h_id AS integer), CAST(:task_id AS integer), CAST(:h_from_execution_id AS integer),
         CAST(:h_from_stage AS varchar),
         CAST(:h_to_stage AS varchar), :h_payload, CAST(:h_notes AS text), CAST(:actor AS varchar),
         CAST(:h_requires_approval AS boolean), CAST(:h_approved_at AS timestamptz),
         CAST(:h_approved_by AS varchar)
  WHERE CAST(:with_handoff AS boolean)
  RETURNING id
), e AS (
  UPDATE executions SET status = :e_status, result_status = :e_result_status,
         result_summary = :e_result_summary, result_details = :e_result_details, usage = :e_usage,
         started_at = coalesce(CAST(:e_started_at AS timestamptz), started_at),
         completed_at = :e_completed_at, runner_id = coalesce(CAST(:e_runner_id AS varchar), runner_id),
         outgoing_handoff = :e_outgoing_handoff
  WHERE id = CAST(:e_id AS integer)
  RETURNING id
), b AS (
  UPDATE bugs SET status = 'fixed', fixed_at = :now
  WHERE task_id = CAST(:task_id AS integer) AND source_stage = CAST(:fix_stage AS varchar) AND status = 'open'
  RETURNING bugs.*
), o AS (
  INSERT INTO outbox (subject, payload, msg_id)
  SELECT * FROM unnest(CAST(:o_subjects AS text[]), CAST(:o_payloads AS bytea[]),
                       CAST(:o_msg_ids AS varchar[]))
  RETURNING id, msg_id
)
UPDATE tasks SET current_stage = :stage, state = :state, status_reason = :status_reason, updated_at = :now,
       rework_count = coalesce(CAST(:rework_count AS integer), rework_count),
       completed_at = CASE WHEN CAST(:completed AS boolean) THEN :now ELSE completed_at END,
       current_execution_id = CASE WHEN CAST(:clear_execution AS boolean) THEN NULL
                                   ELSE current_execution_id END
WHERE id = CAST(:task_id AS integer)
RETURNING (SELECT coalesce(json_agg(b ORDER BY b.id), '[]'::json) FROM b) AS fixed_bugs,
          (SELECT coalesce(json_object_agg(o.msg_id, o.id), '{}'::json) FROM o) AS outbox_ids
"""
    )
    .bindparams(
        bindparam("h_payload", type_=JSONB),
        bindparam("e_result_details", type_=JSONB),
        bindparam("e_usage", type_=JSONB),
        bindparam("e_outgoing_handoff", type_=JSONB),
        bindparam("now", type_=DateTime(timezone=True)),
        bindparam("e_completed_at", type_=DateTime(timezone=True)),
    )
    .columns(fixed_bugs=JSON, outbox_ids=JSON)
)

NO_EXECUTION = {
    "e_id": None,
    "e_status": None,
    "e_result_status": None,
    "e_result_summary": None,
    "e_result_details": None,
    "e_usage": None,
    "e_started_at": None,
    "e_completed_at": None,
    "e_runner_id": None,
    "e_outgoing_handoff": None,
}

NEXT_HANDOFF_ID = text("SELECT nextval(pg_get_serial_sequence('handoffs', 'id'))")

# The jobs running now (executions pending or running that are their task's current one, the task
# running), one row each with its stage and its task's project (NULL: not such a job). Read from the
# small partial index of active executions, each task by its primary key in a subplan of its own: the
# planner cannot turn it into a join whose plan rests on how many tasks the statistics think are
# running. Those go stale within seconds on a board (analyzed when nothing ran, then hundreds run),
# and a join planned on them looped over every running task for every active execution: 22 ms for
# 600 tasks instead of 0.5 ms, for each hop (tests/orchestrator/test_load_query.py).
ACTIVE_JOBS = """
SELECT e.stage,
       (SELECT CASE WHEN tt.state = 'running' AND tt.current_execution_id = e.id THEN tt.project_id END
          FROM tasks tt WHERE tt.id = e.task_id) AS project_id
  FROM executions e WHERE e.status IN ('pending', 'running')
"""
