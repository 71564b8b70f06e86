"""Alembic environment of the bridge: its own schema and version table."""

from __future__ import annotations

from alembic import context
from wf_common.db.sync_tables import SCHEMA, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through wf_sync_bridge.migrations.migrate(database_url)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="alembic_version",
    version_table_schema=SCHEMA,
    include_schemas=True,
    include_name=lambda name, type_, parent: type_ != "schema" or name == SCHEMA,
)
with context.begin_transaction():
    context.run_migrations()
