"""Pending pushes: merged main branches waiting for their remote (offline mode).

Revision ID: 0005
Revises: 0004 (contract: 0004; the lead re-chains at merge time)
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_pushes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("remote", sa.String(length=200), nullable=False),
        sa.Column("branch", sa.String(length=200), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_pending_pushes_project_id_projects"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_pending_pushes"),
        sa.UniqueConstraint("project_id", "remote", "branch", name="uq_pending_pushes_target"),
    )


def downgrade() -> None:
    op.drop_table("pending_pushes")
