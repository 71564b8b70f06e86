"""Initial schema (wf_common.db.tables as of v1.5) and the six agent roles.

Revision ID: 0001
Revises:
Create Date: 2025-11-24

Written out rather than derived from `metadata` so that this revision keeps meaning the same schema
when tables.py changes later (those changes get revisions of their own).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The seed's role-specific reminders ("Coding Principles", "Role-Specific Reminders"), verbatim.
AGENTS: tuple[dict[str, object], ...] = (
    {
        "role": "pm",
        "display_name": "PM Agent",
        "prompt_template": "Planning: break the idea into small, testable tasks with acceptance criteria, "
        "priorities and dependencies.",
        "principles": (
            "- Break features into small, testable tasks\n"
            "- Each task should be completable in one development session\n"
            "- Define clear acceptance criteria for each task\n"
            "- Set realistic priorities based on dependencies\n"
            '- User stories follow: "As a [user], I want [goal], so that [reason]"'
        ),
        "can_create_tasks": True,
        "can_create_bugs": False,
    },
    {
        "role": "dev",
        "display_name": "DEV Agent",
        "prompt_template": "Development: write code in the workspace, commit it to git and report what was "
        "implemented.",
        "principles": (
            "- Read the full task description and acceptance criteria first\n"
            "- Check for existing patterns in the codebase before creating new ones\n"
            "- Don't introduce new dependencies without justification\n"
            "- Leave the codebase cleaner than you found it\n"
            "- If unsure, ask for clarification rather than guessing"
        ),
        "can_create_tasks": False,
        "can_create_bugs": False,
    },
    {
        "role": "qa",
        "display_name": "QA Agent",
        "prompt_template": "Testing: write and run unit tests and verify the acceptance criteria; a failure "
        "becomes a bug and goes back to DEV.",
        "principles": (
            "- Test the acceptance criteria explicitly\n"
            "- Include edge cases and error conditions\n"
            "- Write tests that will catch regressions\n"
            "- If tests fail, create a clear bug report with reproduction steps\n"
            "- Don't pass code that has failing tests"
        ),
        "can_create_tasks": False,
        "can_create_bugs": True,
    },
    {
        "role": "sec",
        "display_name": "SEC Agent",
        "prompt_template": "Security: scan for vulnerabilities and secrets, review dependencies, check the "
        "OWASP Top 10.",
        "principles": (
            "- Scan for hardcoded secrets and credentials\n"
            "- Check dependency vulnerabilities (npm audit, pip-audit)\n"
            "- Review authentication and authorization logic\n"
            "- Look for injection vulnerabilities (SQL, XSS, command)\n"
            "- Verify sensitive data is encrypted at rest and in transit"
        ),
        "can_create_tasks": False,
        "can_create_bugs": True,
    },
    {
        "role": "docs",
        "display_name": "DOCS Agent",
        "prompt_template": "Documentation: update the README, API docs and CHANGELOG.",
        "principles": (
            "- Update README if setup steps changed\n"
            "- Document new API endpoints with examples\n"
            "- Add inline comments for complex algorithms\n"
            "- Update CHANGELOG with user-facing changes\n"
            "- Ensure examples actually work"
        ),
        "can_create_tasks": False,
        "can_create_bugs": False,
    },
    {
        "role": "testing",
        "display_name": "TESTING Agent",
        "prompt_template": "E2E testing after deploy: run the end-to-end suite and verify the deployed "
        "behaviour.",
        "principles": (
            "- Run full E2E test suite, not just new tests\n"
            "- Test on realistic data and scenarios\n"
            "- Verify UI works across supported browsers\n"
            "- Check mobile responsiveness if applicable\n"
            "- Screenshot failures for debugging"
        ),
        "can_create_tasks": False,
        "can_create_bugs": True,
    },
)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("display_name", sa.String(length=50), nullable=False),
        sa.Column("prompt_template", sa.Text(), nullable=False),
        sa.Column("principles", sa.Text(), nullable=True),
        sa.Column("timeout_seconds", sa.Integer(), server_default=sa.text("300"), nullable=False),
        sa.Column("can_create_tasks", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("can_create_bugs", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("role", name=op.f("uq_agents_role")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("msg_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("workspace", sa.Text(), nullable=False),
        sa.Column("test_command", sa.Text(), nullable=False),
        sa.Column("next_task_number", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("next_bug_number", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_by", sa.String(length=100), server_default="human", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("slug", name=op.f("uq_projects_slug")),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("task_key", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "acceptance_criteria",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("current_stage", sa.String(length=20), server_default="backlog", nullable=False),
        sa.Column("state", sa.String(length=20), server_default="queued", nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("current_execution_id", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), server_default=sa.text("5"), nullable=False),
        sa.Column(
            "blocked_by", sa.ARRAY(sa.Integer()), server_default=sa.text("'{}'::integer[]"), nullable=False
        ),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("rework_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_by", sa.String(length=50), server_default="human", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("priority BETWEEN 1 AND 10", name=op.f("ck_tasks_priority_range")),
        sa.ForeignKeyConstraint(["parent_id"], ["tasks.id"], name=op.f("fk_tasks_parent_id_tasks")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_tasks_project_id_projects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("project_id", "task_key", name="uq_tasks_project_key"),
    )
    op.create_index(
        "ix_tasks_dispatch",
        "tasks",
        ["current_stage", "state"],
        unique=False,
        postgresql_where=sa.text("state <> 'done'"),
    )
    op.create_index("ix_tasks_parent", "tasks", ["parent_id"], unique=False)
    op.create_table(
        "executions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("cwd", sa.Text(), nullable=True),
        sa.Column("runner_id", sa.String(length=100), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("incoming_handoff", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("outgoing_handoff", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("result_status", sa.String(length=20), nullable=True),
        sa.Column("result_summary", sa.Text(), nullable=True),
        sa.Column("result_details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("log_path", sa.Text(), nullable=True),
        sa.Column("artifacts", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("usage", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed', 'paused')",
            name=op.f("ck_executions_valid_status"),
        ),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_executions_agent_id_agents")),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_executions_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_executions_idempotency_key")),
    )
    # tasks and executions reference each other: the task → current execution link comes last.
    op.create_foreign_key(
        "fk_tasks_current_execution_id_executions", "tasks", "executions", ["current_execution_id"], ["id"]
    )
    op.create_index(
        "ix_executions_active",
        "executions",
        ["status"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    op.create_index("ix_executions_task", "executions", ["task_id"], unique=False)
    op.create_table(
        "bugs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=True),
        sa.Column("bug_key", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("source_stage", sa.String(length=20), nullable=False),
        sa.Column(
            "reproduction",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), server_default="open", nullable=False),
        sa.Column("created_by", sa.String(length=100), server_default="system", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("fixed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("killed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("killed_by", sa.String(length=100), nullable=True),
        sa.Column("kill_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'fixed', 'killed')", name=op.f("ck_bugs_valid_bug_status")),
        sa.ForeignKeyConstraint(
            ["execution_id"], ["executions.id"], name=op.f("fk_bugs_execution_id_executions")
        ),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_bugs_project_id_projects")),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_bugs_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bugs")),
        sa.UniqueConstraint("project_id", "bug_key", name="uq_bugs_project_key"),
    )
    op.create_index("ix_bugs_task", "bugs", ["task_id"], unique=False)
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"], ["executions.id"], name=op.f("fk_feedback_execution_id_executions")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_feedback_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    op.create_index("ix_feedback_task", "feedback", ["task_id"], unique=False)
    op.create_table(
        "handoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("from_execution_id", sa.Integer(), nullable=True),
        sa.Column("to_execution_id", sa.Integer(), nullable=True),
        sa.Column("from_stage", sa.String(length=20), nullable=False),
        sa.Column("to_stage", sa.String(length=20), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=100), server_default="system", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("requires_approval", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.String(length=100), nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_by", sa.String(length=100), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_execution_id"], ["executions.id"], name=op.f("fk_handoffs_from_execution_id_executions")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_handoffs_task_id_tasks")),
        sa.ForeignKeyConstraint(
            ["to_execution_id"], ["executions.id"], name=op.f("fk_handoffs_to_execution_id_executions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoffs")),
    )
    op.create_index("ix_handoffs_task", "handoffs", ["task_id"], unique=False)
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("bug_id", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column(
            "content_type", sa.String(length=100), server_default="application/octet-stream", nullable=False
        ),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.String(length=100), server_default="system", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "task_id IS NOT NULL OR bug_id IS NOT NULL", name=op.f("ck_attachments_attached_to_something")
        ),
        sa.ForeignKeyConstraint(["bug_id"], ["bugs.id"], name=op.f("fk_attachments_bug_id_bugs")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_attachments_project_id_projects")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_attachments_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )

    agents_table = sa.table(
        "agents",
        sa.column("role", sa.String),
        sa.column("display_name", sa.String),
        sa.column("prompt_template", sa.Text),
        sa.column("principles", sa.Text),
        sa.column("can_create_tasks", sa.Boolean),
        sa.column("can_create_bugs", sa.Boolean),
    )
    op.bulk_insert(agents_table, [dict(a) for a in AGENTS])


def downgrade() -> None:
    op.drop_constraint("fk_tasks_current_execution_id_executions", "tasks", type_="foreignkey")
    op.drop_table("attachments")
    op.drop_index("ix_handoffs_task", table_name="handoffs")
    op.drop_table("handoffs")
    op.drop_index("ix_feedback_task", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_bugs_task", table_name="bugs")
    op.drop_table("bugs")
    op.drop_index("ix_executions_task", table_name="executions")
    op.drop_index(
        "ix_executions_active",
        table_name="executions",
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    op.drop_table("executions")
    op.drop_index("ix_tasks_parent", table_name="tasks")
    op.drop_index("ix_tasks_dispatch", table_name="tasks", postgresql_where=sa.text("state <> 'done'"))
    op.drop_table("tasks")
    op.drop_table("projects")
    op.drop_table("outbox")
    op.drop_table("agents")
