"""board_read (GET /api/board with N tasks, the real board-api process) and orchestrator_rss_mb (the
orchestrator's resident memory with N tasks in the database). Tasks are topped up with plain SQL
copies of the ones the throughput run made (finished tasks, so the orchestrator leaves them be)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from wf_cli.embedded import free_port

TOP_UP = text(
    """
INSERT INTO tasks (project_id, task_key, title, description, acceptance_criteria, current_stage, state,
                   priority, blocked_by, created_by, created_at, updated_at)
SELECT project_id, 'B-' || g, title, description, acceptance_criteria, 'done', 'done', priority, '{}',
       'bench', now(), now()
FROM (SELECT * FROM tasks WHERE parent_id IS NOT NULL LIMIT 1) t,
     generate_series(CAST(:start AS integer), CAST(:stop AS integer)) g
"""
)


async def top_up(database_url: str, total: int) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            have = int(await conn.scalar(text("SELECT count(*) FROM tasks")) or 0)
            if have < total:
                start = int(
                    await conn.scalar(text("SELECT count(*) FROM tasks WHERE task_key LIKE 'B-%'")) or 0
                )
                await conn.execute(TOP_UP, {"start": start + 1, "stop": start + total - have})
            return int(await conn.scalar(text("SELECT count(*) FROM tasks")) or 0)
    finally:
        await engine.dispose()


@contextlib.contextmanager
def board_api(config: Path, nats_url: str, database_url: str, log: Path, token: str) -> Iterator[str]:
    port = free_port()
    env = os.environ | {
        "WF_CONFIG": str(config),
        "WF_NATS_URL": nats_url,
        "WF_DATABASE_URL": database_url,
        "WF_BOARD_PORT": str(port),
        "WF_LOG_LEVEL": "WARNING",
        "WF_API_TOKEN": token,
    }
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "wf_board_api"], env=env, stdout=out, stderr=out)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)


TOUCH = text("UPDATE tasks SET updated_at = now() WHERE id = (SELECT min(id) FROM tasks)")


def _touch(database_url: str) -> None:
    """One task written, as a hop would: the next read builds the board again."""

    async def write() -> None:
        engine = create_async_engine(database_url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(TOUCH)
        finally:
            await engine.dispose()

    asyncio.run(write())


def board_read(
    config: Path, nats_url: str, database_url: str, workdir: Path, *, tasks: int, reads: int
) -> tuple[list[float], list[float], int]:
    """Reads of an unchanged board (served as built), then reads each after a task was written (built
    again by PostgreSQL): both figures, in that order, and the number of tasks."""
    count = asyncio.run(top_up(database_url, tasks))
    token = secrets.token_urlsafe(24)
    with board_api(config, nats_url, database_url, workdir / "board-api.log", token) as url:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/api/board").status_code == 200:
                        break
                time.sleep(0.1)
            unchanged, changed = [], []
            for _ in range(reads):
                began = time.perf_counter()
                reply = client.get("/api/board")
                unchanged.append(time.perf_counter() - began)
                reply.raise_for_status()
            for _ in range(max(1, reads // 3)):
                _touch(database_url)
                began = time.perf_counter()
                reply = client.get("/api/board")
                changed.append(time.perf_counter() - began)
                reply.raise_for_status()
    return unchanged, changed, count


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")
