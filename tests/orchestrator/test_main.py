"""The process entry points as `wf start` and docker compose run them."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from wf_cli.embedded import NatsServer
from wf_cli.embedded.ports import free_port
from wf_orchestrator.migrations import current_revision

from tests.orchestrator.revisions import head_revision


async def run(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wf_orchestrator", *args,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_migrate_subcommand_brings_an_empty_database_to_head(empty_database_url: str) -> None:
    plain = empty_database_url.replace("postgresql+asyncpg://", "postgresql://")
    code, out = await run("migrate", env={"WF_DATABASE_URL": plain})
    assert code == 0, out
    assert await current_revision(empty_database_url) == head_revision()


async def test_bad_configuration_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("pipeline:\n  rework_limit: -1\n")
    code, out = await run(env={"WF_CONFIG": str(bad)})
    assert code == 2
    assert "pipeline.rework_limit" in out
    code, out = await run("migrate", env={"WF_DATABASE_URL": "mysql://x"})
    assert code == 2
    assert "PostgreSQL" in out


async def test_an_unreachable_database_exits_1_with_one_line_and_no_traceback(
    nats_server: NatsServer,
) -> None:
    code, out = await run(
        env={
            "WF_NATS_URL": nats_server.url,
            "WF_DATABASE_URL": f"postgresql://wf:pw@127.0.0.1:{free_port()}/wf",
        }
    )
    assert code == 1, out
    assert "Traceback" not in out
    [said] = [line for line in out.splitlines() if line.startswith("wf-orchestrator: ")]
    assert "PostgreSQL" in said or "database" in said, out
    assert ":pw@" not in out  # the URL's password is not shown
