"""Read-only access to the workflow database.

The orchestrator is the only writer. Every request here runs in one READ ONLY transaction, so a bug
in this service cannot change state; REPEATABLE READ makes the several queries of one response (a
task with its handoffs, executions and bugs) see the same moment, never a half-applied handoff.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from wf_board_api.errors import Unavailable

CONNECT_TIMEOUT_SECONDS = 5.0


def make_engine(url: str) -> AsyncEngine:
    # pool_pre_ping: PostgreSQL restarts (wf stop/start of the database alone) must not turn into
    # one failed request per pooled connection.
    return create_async_engine(
        url,
        pool_size=5,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
    )


@asynccontextmanager
async def read_only(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    try:
        conn = await engine.connect()
    except (TimeoutError, OSError) as err:
        # asyncpg raises these unwrapped when the server is down or unreachable.
        raise Unavailable(f"the database is not answering ({err or type(err).__name__})") from err
    try:
        trans = await conn.begin()
        try:
            await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            yield conn
        finally:
            # Nothing was written; ending with a rollback keeps it that way by construction.
            await trans.rollback()
    finally:
        await conn.close()
