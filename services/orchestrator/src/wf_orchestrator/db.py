"""The database engine. Every unit of work is one transaction on one pooled connection (see uow.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from wf_common.settings import async_database_url


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        async_database_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # READ COMMITTED: each statement sees the latest commits, which the row locks rely on
        # (a transaction that waited for a lock re-reads what the holder committed).
        isolation_level="READ COMMITTED",
        connect_args={"server_settings": {"application_name": "wf-orchestrator"}},
    )
