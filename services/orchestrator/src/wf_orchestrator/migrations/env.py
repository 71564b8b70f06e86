"""Alembic environment: runs on the connection `migrate()` hands over (already in a transaction)."""

from __future__ import annotations

from alembic import context
from wf_common.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through wf_orchestrator.migrations.migrate(database_url)")

context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
