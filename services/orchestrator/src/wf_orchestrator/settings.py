"""Orchestrator settings: the common WF_* service settings plus the knobs of this process."""

from __future__ import annotations

from pydantic import Field
from wf_common.settings import ServiceSettings


class OrchestratorSettings(ServiceSettings):
    # Results applied at once (different tasks; each locks its task row).
    result_concurrency: int = Field(16, ge=1, le=256)
    # Commands handled at once.
    command_concurrency: int = Field(8, ge=1, le=256)
    db_pool_size: int = Field(20, ge=2, le=200)
    # Housekeeping: timeouts, stuck blocked tasks, unpublished outbox rows, a dispatch pass.
    sweep_interval_seconds: float = Field(2.0, gt=0)
    # An execution is failed once it ran its stage's timeout plus this margin (runners time out first).
    timeout_margin_seconds: float = Field(30.0, ge=0)
    # Jobs started in one dispatch transaction at most (bounds transaction size; the rest follow).
    dispatch_batch: int = Field(200, ge=1, le=5000)
    # A result or command that makes a task ready dispatches it in its own transaction when no other
    # dispatch pass is running (lower latency per hop); off = every job goes through a separate pass.
    dispatch_in_transaction: bool = True
    # A Result that just moves its task on is applied as one guarded statement (wf_orchestrator.hop);
    # off = every Result takes the locked path.
    one_statement_hop: bool = True
    # `make bench`: write how long each applied Result took (received → next Job acked by JetStream),
    # as a JSON list of seconds, to this file when the process stops.
    timings_file: str | None = None
    # Run migrations at start (idempotent); `python -m wf_orchestrator migrate` does only that.
    migrate_on_start: bool = True
