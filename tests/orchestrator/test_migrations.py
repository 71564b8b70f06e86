"""The migrations create exactly wf_common.db.tables and the six agent roles, and can run any number
of times, also at once (wf start and a container may both migrate)."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from wf_common.db.tables import agents, metadata
from wf_orchestrator.migrations import current_revision, migrate

from tests.orchestrator.revisions import head_revision


async def test_migrate_is_idempotent_and_matches_the_table_definitions(empty_database_url: str) -> None:
    await asyncio.gather(migrate(empty_database_url), migrate(empty_database_url))
    await migrate(empty_database_url)
    assert await current_revision(empty_database_url) == head_revision()
    engine = create_async_engine(empty_database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
            assert diff == []
            rows = (await conn.execute(select(agents).order_by(agents.c.id))).mappings().all()
    finally:
        await engine.dispose()
    assert [(r["role"], r["can_create_tasks"], r["can_create_bugs"]) for r in rows] == [
        ("pm", True, False), ("dev", False, False), ("qa", False, True),
        ("sec", False, True), ("docs", False, False), ("testing", False, True),
    ]  # fmt: skip
    pm = rows[0]
    assert pm["display_name"] == "PM Agent"
    assert "Break features into small, testable tasks" in pm["principles"]
    assert all(r["prompt_template"] and r["principles"] for r in rows)
