"""Feedback may point at a line of the task's diff: feedback.file and feedback.line.

Revision ID: 0007
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
# The board helper's number in the per-helper list (0002 sec … 0006 llm, 0007 board); it follows the
# newest revision present when it was merged.
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column("file", sa.String(500), nullable=True))
    op.add_column("feedback", sa.Column("line", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("feedback", "line")
    op.drop_column("feedback", "file")
