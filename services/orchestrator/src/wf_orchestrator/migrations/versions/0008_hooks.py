"""Inbound webhooks: hooks (no secrets; a salt the board derives each secret from) and hook_deliveries.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
# The sync helper's revision; it follows the newest revision present when it was written.
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "hooks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(40), nullable=False, unique=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        _count("delivered"),
        _count("duplicates"),
        _count("refused_signature"),
        _count("refused_replay"),
        _count("refused_too_large"),
        _count("refused_invalid"),
        sa.Column("last_delivery_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("action IN ('idea', 'task')", name="hook_action"),
    )
    op.create_table(
        "hook_deliveries",
        sa.Column("hook_id", sa.Integer(), sa.ForeignKey("hooks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("delivery_id", sa.String(200), primary_key=True),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("task_key", sa.String(20), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hook_deliveries")
    op.drop_table("hooks")
