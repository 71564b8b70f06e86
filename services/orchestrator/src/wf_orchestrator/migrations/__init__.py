"""Alembic migrations of the workflow database, run programmatically (no alembic.ini).

    await migrate("postgresql://...")          # upgrade to head; idempotent, safe to run concurrently
    python -m wf_orchestrator migrate          # the same, with WF_DATABASE_URL / config.yaml

New revision (developers), against a database at head, after changing wf_common.db.tables:

    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.revision(alembic_config(c), message="what",
                                                       autogenerate=True, rev_id="0002"))

then review the generated file in versions/ (write operations out; do not call metadata.create_all).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from wf_common.settings import async_database_url

HERE = Path(__file__).parent
# Serialises concurrent migrate() calls (wf start, tests, several containers) on one database.
_MIGRATION_LOCK = 0x77665F6D


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_path_separator", "os")
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(database_url: str) -> None:
    """Upgrade the database at `database_url` to the newest revision (a no-op when it is there)."""
    engine = create_async_engine(async_database_url(database_url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
    finally:
        await engine.dispose()


async def current_revision(database_url: str) -> str | None:
    engine = create_async_engine(async_database_url(database_url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
            if not exists:
                return None
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            return str(version) if version is not None else None
    finally:
        await engine.dispose()


__all__ = ["alembic_config", "current_revision", "migrate"]
