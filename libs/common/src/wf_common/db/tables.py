"""The workflow database, as SQLAlchemy Core tables (the seed schema plus bugs, attachments, feedback
and an outbox). The orchestrator owns these tables and is their only writer; its Alembic migrations
create them. The board API reads them. Keep docs/architecture.md in step with this file.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _now() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(40), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    # One project per directory (migration 0004): their agents would write over each other.
    Column("workspace", Text, nullable=False, unique=True),
    Column("test_command", Text, nullable=False),
    # Per-project counters behind T-001 and B-001 keys, bumped with UPDATE ... RETURNING.
    Column("next_task_number", Integer, nullable=False, server_default=text("1")),
    Column("next_bug_number", Integer, nullable=False, server_default=text("1")),
    Column("created_by", String(100), nullable=False, server_default="human"),
    _now(),
)

agents = Table(
    "agents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("role", String(20), nullable=False, unique=True),
    Column("display_name", String(50), nullable=False),
    Column("prompt_template", Text, nullable=False),
    Column("principles", Text),
    Column("timeout_seconds", Integer, nullable=False, server_default=text("300")),
    Column("can_create_tasks", Boolean, nullable=False, server_default=text("false")),
    Column("can_create_bugs", Boolean, nullable=False, server_default=text("false")),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    _now(),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("task_key", String(20), nullable=False),
    Column("title", String(255), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("acceptance_criteria", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("current_stage", String(20), nullable=False, server_default="backlog"),
    Column("state", String(20), nullable=False, server_default="queued"),
    Column("status_reason", Text),
    Column(
        "current_execution_id",
        Integer,
        ForeignKey("executions.id", use_alter=True, name="fk_tasks_current_execution_id_executions"),
    ),
    Column("priority", Integer, nullable=False, server_default=text("5")),
    Column("blocked_by", ARRAY(Integer), nullable=False, server_default=text("'{}'::integer[]")),
    Column("parent_id", Integer, ForeignKey("tasks.id")),
    Column("rework_count", Integer, nullable=False, server_default=text("0")),
    Column("created_by", String(50), nullable=False, server_default="human"),
    _now(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("completed_at", DateTime(timezone=True)),
    UniqueConstraint("project_id", "task_key", name="uq_tasks_project_key"),
    CheckConstraint("priority BETWEEN 1 AND 10", name="priority_range"),
)
Index("ix_tasks_dispatch", tasks.c.current_stage, tasks.c.state, postgresql_where=text("state <> 'done'"))
Index("ix_tasks_parent", tasks.c.parent_id)

executions = Table(
    "executions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", Integer, ForeignKey("tasks.id"), nullable=False),
    Column("agent_id", Integer, ForeignKey("agents.id"), nullable=False),
    Column("stage", String(20), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("status", String(20), nullable=False, server_default="pending"),
    Column("cwd", Text),
    Column("runner_id", String(100)),
    Column("queued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("incoming_handoff", JSONB),
    Column("outgoing_handoff", JSONB),
    Column("result_status", String(20)),
    Column("result_summary", Text),
    Column("result_details", JSONB),
    Column("log_path", Text),
    Column("artifacts", JSONB),
    # Tokens, model and time: what each execution (and so each task) cost.
    Column("usage", JSONB),
    # The cost ledger (migration 0006): generated from `usage`, never written directly.
    Column("model", Text, Computed("usage ->> 'model'", persisted=True)),
    Column(
        "prompt_tokens",
        Integer,
        Computed("COALESCE((usage ->> 'prompt_tokens')::integer, 0)", persisted=True),
    ),
    Column(
        "completion_tokens",
        Integer,
        Computed("COALESCE((usage ->> 'completion_tokens')::integer, 0)", persisted=True),
    ),
    Column("cost_usd", Numeric(16, 6), Computed("(usage ->> 'cost_usd')::numeric(16, 6)", persisted=True)),
    Column("feedback", Text),
    Column("feedback_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('pending', 'running', 'completed', 'failed', 'paused')", name="valid_status"),
)
Index("ix_executions_task", executions.c.task_id)
Index("ix_executions_model", executions.c.model)
Index(
    "ix_executions_active",
    executions.c.status,
    postgresql_where=text("status IN ('pending', 'running')"),
)

handoffs = Table(
    "handoffs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", Integer, ForeignKey("tasks.id"), nullable=False),
    Column("from_execution_id", Integer, ForeignKey("executions.id")),
    Column("to_execution_id", Integer, ForeignKey("executions.id")),
    Column("from_stage", String(20), nullable=False),
    Column("to_stage", String(20), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("notes", Text),
    Column("actor", String(100), nullable=False, server_default="system"),
    _now(),
    Column("requires_approval", Boolean, nullable=False, server_default=text("false")),
    Column("approved_at", DateTime(timezone=True)),
    Column("approved_by", String(100)),
    Column("rejected_at", DateTime(timezone=True)),
    Column("rejected_by", String(100)),
    Column("decision_note", Text),
)
Index("ix_handoffs_task", handoffs.c.task_id)

bugs = Table(
    "bugs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("task_id", Integer, ForeignKey("tasks.id"), nullable=False),
    Column("execution_id", Integer, ForeignKey("executions.id")),
    Column("bug_key", String(20), nullable=False),
    Column("title", String(255), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("source_stage", String(20), nullable=False),
    Column("reproduction", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", String(20), nullable=False, server_default="open"),
    Column("created_by", String(100), nullable=False, server_default="system"),
    _now(),
    Column("fixed_at", DateTime(timezone=True)),
    # Soft delete: a killed bug stays for the record but no longer goes to agents.
    Column("killed_at", DateTime(timezone=True)),
    Column("killed_by", String(100)),
    Column("kill_reason", Text),
    UniqueConstraint("project_id", "bug_key", name="uq_bugs_project_key"),
    CheckConstraint("status IN ('open', 'fixed', 'killed')", name="valid_bug_status"),
)
Index("ix_bugs_task", bugs.c.task_id)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("task_id", Integer, ForeignKey("tasks.id")),
    Column("bug_id", Integer, ForeignKey("bugs.id")),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False, server_default="application/octet-stream"),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_by", String(100), nullable=False, server_default="system"),
    _now(),
    CheckConstraint("task_id IS NOT NULL OR bug_id IS NOT NULL", name="attached_to_something"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", Integer, ForeignKey("tasks.id"), nullable=False),
    Column("execution_id", Integer, ForeignKey("executions.id")),
    Column("text", Text, nullable=False),
    Column("actor", String(100), nullable=False),
    # A comment on a line of the task's diff (migration 0007).
    Column("file", String(500)),
    Column("line", Integer),
    _now(),
)
Index("ix_feedback_task", feedback.c.task_id)

# Transactional outbox: events and jobs are written here in the same transaction as the state change,
# then published; rows left behind by a crash are published at the next start (Nats-Msg-Id dedupes).
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("msg_id", String(200), nullable=False),
    _now(),
)

# Pushes of merged main branches that could not reach the remote yet (offline): retried with backoff
# by the orchestrator until they succeed. One row per project and branch; `wf status` lists them.
pending_pushes = Table(
    "pending_pushes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("remote", String(200), nullable=False),
    Column("branch", String(200), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    _now(),
    UniqueConstraint("project_id", "remote", "branch", name="uq_pending_pushes_target"),
)

# Inbound webhooks (`wf hook create`): a signed POST /api/hooks/<name> submits an idea or creates a task
# in the hook's project. No secret is stored: the board API derives each hook's secret from its own
# key and `salt` (wf_common.hooks), so reading this table is not enough to forge a delivery.
hooks = Table(
    "hooks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(40), nullable=False, unique=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("action", String(10), nullable=False),  # idea | task
    Column("salt", String(64), nullable=False),
    Column("created_by", String(100), nullable=False),
    _now(),
    Column("delivered", Integer, nullable=False, server_default=text("0")),
    Column("duplicates", Integer, nullable=False, server_default=text("0")),
    # Refused deliveries, by reason (wf_common.hooks.REFUSALS).
    Column("refused_signature", Integer, nullable=False, server_default=text("0")),
    Column("refused_replay", Integer, nullable=False, server_default=text("0")),
    Column("refused_too_large", Integer, nullable=False, server_default=text("0")),
    Column("refused_invalid", Integer, nullable=False, server_default=text("0")),
    Column("last_delivery_at", DateTime(timezone=True)),
    CheckConstraint("action IN ('idea', 'task')", name="hook_action"),
)

# Each accepted delivery of a hook: its id (the sender's), the body's SHA-256 and the task it made. A
# second delivery with the same id answers the same task; with another body it is refused as a replay.
hook_deliveries = Table(
    "hook_deliveries",
    metadata,
    Column("hook_id", Integer, ForeignKey("hooks.id", ondelete="CASCADE"), primary_key=True),
    Column("delivery_id", String(200), primary_key=True),
    Column("body_sha256", String(64), nullable=False),
    Column("task_key", String(20), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
