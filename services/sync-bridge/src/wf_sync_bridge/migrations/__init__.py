"""Alembic migrations of the bridge's schema `sync` (version table sync.alembic_version), run
programmatically: `await migrate(url)` or `python -m wf_sync_bridge migrate`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from wf_common.db.sync_tables import SCHEMA
from wf_common.settings import async_database_url

HERE = Path(__file__).parent
_MIGRATION_LOCK = 0x77665F73  # not the orchestrator's: the two migrate independently


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_path_separator", "os")
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(database_url: str) -> None:
    engine = create_async_engine(async_database_url(database_url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
    finally:
        await engine.dispose()


__all__ = ["alembic_config", "migrate"]
