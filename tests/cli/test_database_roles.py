"""The roles `wf start` gives the embedded PostgreSQL: the orchestrator owns, the board only reads."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from wf_cli.credentials import PG_OWNER, PG_READER, PG_SUPERUSER, Credentials
from wf_cli.embedded import EmbeddedPostgres
from wf_cli.servers import DATABASE, prepare_roles
from wf_orchestrator.migrations import migrate

from tests.fixtures.servers import server_scratch_dir


@pytest.fixture
def credentials() -> Credentials:
    return Credentials(
        api_token=secrets.token_urlsafe(32),
        postgres={role: secrets.token_urlsafe(32) for role in (PG_SUPERUSER, PG_OWNER, PG_READER)},
        nats={},
    )


@pytest.fixture
def pg(credentials: Credentials) -> Iterator[EmbeddedPostgres]:
    with server_scratch_dir("wf-test-roles-") as scratch:
        server = EmbeddedPostgres(
            scratch / "data", durable=False, password=credentials.postgres[PG_SUPERUSER]
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()


def dsn(pg: EmbeddedPostgres, credentials: Credentials, role: str) -> str:
    return pg.dsn(DATABASE, role=role, password=credentials.postgres[role])


async def test_the_owner_migrates_and_writes_the_board_role_only_reads(
    pg: EmbeddedPostgres, credentials: Credentials
) -> None:
    prepare_roles(pg, credentials)
    prepare_roles(pg, credentials)  # every start does it again
    await migrate(pg.async_url(DATABASE, role=PG_OWNER, password=credentials.postgres[PG_OWNER]))

    owner = await asyncpg.connect(dsn(pg, credentials, PG_OWNER))
    try:
        assert not await owner.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        await owner.execute(
            "INSERT INTO projects (slug, name, workspace, test_command) VALUES ('demo', 'D', '/d', 'true')"
        )
        # A superuser-only escape (run a program as the server) is closed to the orchestrator's role.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await owner.execute("COPY (SELECT 1) TO PROGRAM 'true'")
    finally:
        await owner.close()

    board = await asyncpg.connect(dsn(pg, credentials, PG_READER))
    try:
        assert await board.fetchval("SELECT slug FROM projects") == "demo"
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await board.execute("DELETE FROM projects")
        await board.execute("SET default_transaction_read_only = off")  # even then: no privilege
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await board.execute("DELETE FROM projects")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await board.execute("CREATE TABLE mine (v int)")
    finally:
        await board.close()

    # A table a later migration adds is readable by the board too (default privileges).
    owner = await asyncpg.connect(dsn(pg, credentials, PG_OWNER))
    await owner.execute("CREATE TABLE added_later (v int); INSERT INTO added_later VALUES (7)")
    await owner.close()
    board = await asyncpg.connect(dsn(pg, credentials, PG_READER))
    assert await board.fetchval("SELECT v FROM added_later") == 7
    await board.close()

    for role in (PG_OWNER, PG_READER):
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(pg.dsn(DATABASE, role=role, password="wrong"))


async def test_a_database_made_by_the_superuser_is_handed_to_the_owner(
    pg: EmbeddedPostgres, credentials: Credentials, tmp_path: Path
) -> None:
    # What an earlier version of wf start left: the database and its tables owned by `postgres`.
    pg.create_database(DATABASE)
    await migrate(pg.async_url(DATABASE))
    prepare_roles(pg, credentials)
    owners = pg.psql(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'", database=DATABASE
    ).split()
    assert owners == [PG_OWNER]
    await migrate(pg.async_url(DATABASE, role=PG_OWNER, password=credentials.postgres[PG_OWNER]))
    board = await asyncpg.connect(dsn(pg, credentials, PG_READER))
    assert await board.fetchval("SELECT count(*) FROM projects") == 0
    await board.close()
