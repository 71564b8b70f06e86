"""The cost ledger: tokens, model and money of each execution as columns.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

The columns are generated from `executions.usage` (the runner's Usage, with `cost_usd` for priced
models), so the result path writes nothing new and the sums of `GET /api/stats` and the budgets are
plain indexed aggregates.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "model": "text GENERATED ALWAYS AS (usage ->> 'model') STORED",
    "prompt_tokens": "integer GENERATED ALWAYS AS (coalesce((usage ->> 'prompt_tokens')::integer, 0)) STORED",
    "completion_tokens": (
        "integer GENERATED ALWAYS AS (coalesce((usage ->> 'completion_tokens')::integer, 0)) STORED"
    ),
    "cost_usd": "numeric(16, 6) GENERATED ALWAYS AS ((usage ->> 'cost_usd')::numeric(16, 6)) STORED",
}


def upgrade() -> None:
    for name, spec in COLUMNS.items():
        op.execute(f"ALTER TABLE executions ADD COLUMN {name} {spec}")
    op.create_index("ix_executions_model", "executions", ["model"])


def downgrade() -> None:
    op.drop_index("ix_executions_model", table_name="executions")
    for name in reversed(COLUMNS):
        op.drop_column("executions", name)
