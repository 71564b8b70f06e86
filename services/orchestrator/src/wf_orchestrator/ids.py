"""Execution and handoff ids, reserved from their sequences in blocks: one round trip per block, not
per hop. Every id the orchestrator gives out comes from here, one pool per process, so the ids of one
task's executions and handoffs grow in the order they were made (readers order by id); an id never
used is a harmless gap in the sequence."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_RESERVE = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")


class IdPool:
    def __init__(self, engine: AsyncEngine, block: int = 200) -> None:
        self._engine = engine
        self._block = block
        self._free: dict[str, list[int]] = {"executions": [], "handoffs": []}
        self._refill = asyncio.Lock()

    async def _take(self, table: str) -> int:
        free = self._free[table]
        if not free:
            async with self._refill:
                if not free:  # another caller may have refilled it meanwhile
                    async with self._engine.connect() as conn:
                        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                        rows = await conn.execute(_RESERVE, {"table": table, "n": self._block})
                        free.extend(sorted((int(i) for i in rows.scalars().all()), reverse=True))
        return free.pop()

    async def execution(self) -> int:
        return await self._take("executions")

    async def handoff(self) -> int:
        return await self._take("handoffs")
