"""One project per workspace: two projects on one directory would have their agents write over each
other. The orchestrator refuses a taken workspace with a message naming its project; this constraint
holds even against two create_project commands racing.

Revision ID: 0004
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shared = op.get_bind().execute(
        sa.text(
            "SELECT workspace, string_agg(slug, ', ' ORDER BY id) FROM projects "
            "GROUP BY workspace HAVING count(*) > 1"
        )
    )
    clashes = [f"{workspace} ({slugs})" for workspace, slugs in shared]
    if clashes:
        fix = "Give all but one of them another workspace (in psql: update projects set workspace = "
        fix += "'<dir>' where slug = '<slug>') and start the orchestrator again."
        raise RuntimeError(f"several projects share a workspace: {'; '.join(clashes)}. {fix}")
    op.create_unique_constraint("uq_projects_workspace", "projects", ["workspace"])


def downgrade() -> None:
    op.drop_constraint("uq_projects_workspace", "projects", type_="unique")
