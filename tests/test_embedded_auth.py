"""The embedded servers with credentials, as `wf start` runs them: nobody gets in without them."""

from __future__ import annotations

import asyncio
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoServersError
from wf_cli.embedded import EmbeddedPostgres, EmbeddedServerError, NatsServer, NatsUser

from tests.fixtures.servers import server_scratch_dir


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.fixture
def passwords() -> dict[str, str]:
    return {"admin": secrets.token_urlsafe(24), "runner": secrets.token_urlsafe(24)}


@pytest.fixture
def authed_nats(tmp_path: Path, passwords: dict[str, str]) -> Iterator[NatsServer]:
    users = [
        NatsUser("admin", passwords["admin"]),
        NatsUser("runner", passwords["runner"], deny_publish=["wf.cmd.>"], deny_subscribe=["wf.cmd.>"]),
    ]
    with NatsServer(tmp_path / "nats", users=users) as server:
        yield server


async def _connect(url: str, errors: list[Exception] | None = None) -> NATS:
    async def on_error(err: Exception) -> None:
        if errors is not None:
            errors.append(err)

    nc = NATS()
    try:
        await nc.connect(url, allow_reconnect=False, max_reconnect_attempts=0, error_cb=on_error)
    except BaseException:
        # A refused attempt leaves its socket open in nats-py: close it here, not in the GC.
        await nc.close()
        raise
    return nc


async def test_nats_refuses_clients_without_credentials(
    authed_nats: NatsServer, passwords: dict[str, str]
) -> None:
    for url in (authed_nats.url, authed_nats.url.replace("nats://", f"nats://runner:{passwords['admin']}@")):
        errors: list[Exception] = []
        with pytest.raises((NoServersError, nats.errors.Error, OSError)):
            await _connect(url, errors)
        assert any("authorization" in str(e).lower() for e in errors), errors

    # The passwords are in a file only the owner reads, not on the server's command line.
    config = authed_nats.store_dir / "nats-server.conf"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert authed_nats.pid is not None
    assert not any(p in cmdline(authed_nats.pid) for p in passwords.values())
    assert passwords["admin"] not in repr(authed_nats)
    assert passwords["admin"] not in authed_nats.url


async def test_nats_users_only_do_what_their_permissions_allow(authed_nats: NatsServer) -> None:
    admin = await _connect(authed_nats.url_for("admin"))
    errors: list[Exception] = []
    runner = await _connect(authed_nats.url_for("runner"), errors)
    try:
        received: list[str] = []

        async def record(msg: Msg) -> None:
            received.append(msg.subject)

        await admin.subscribe("wf.>", cb=record)
        await admin.flush()
        await runner.publish("wf.cmd.pause", b"{}")  # a runner must not command the orchestrator
        await runner.publish("wf.results.dev", b"{}")  # ... but does publish results
        await runner.flush()
        for _ in range(3000):  # up to 30 s on a loaded machine; done as soon as both have come
            if "wf.results.dev" in received and errors:
                break
            await asyncio.sleep(0.01)
        await admin.flush()  # anything else the server delivered to the admin is in `received` now
        assert received == ["wf.results.dev"]
        assert any("permissions violation" in str(e).lower() for e in errors), errors
    finally:
        await runner.close()
        await admin.close()


@pytest.fixture
def scratch() -> Iterator[Path]:
    with server_scratch_dir("wf-test-pgauth-") as path:
        yield path


REFUSED = (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)


async def _refused(dsn: str) -> str:
    with pytest.raises(REFUSED) as info:
        await asyncpg.connect(dsn, timeout=10)
    return str(info.value)


async def test_postgres_with_a_password_refuses_connections_without_it(scratch: Path) -> None:
    password = secrets.token_urlsafe(24)
    pg = EmbeddedPostgres(scratch / "data", durable=False, password=password)
    pg.start()
    try:
        base = f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
        await _refused(base)
        await _refused(f"postgresql://postgres:wrong@127.0.0.1:{pg.port}/postgres")
        # The unix socket too (the directory of the socket is the data dir).
        await _refused(f"postgresql://postgres@/postgres?host={pg.data_dir}&port={pg.port}")
        assert "trust" not in (pg.data_dir / "pg_hba.conf").read_text().split("Workflow Hub")[1]

        conn = await asyncpg.connect(pg.dsn(), timeout=10)
        try:
            assert await conn.fetchval("SHOW password_encryption") == "scram-sha-256"
            assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
            stored = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
            assert stored.startswith("SCRAM-SHA-256$")
        finally:
            await conn.close()

        # A role made with ensure_login_role logs in with its own password only.
        reader = secrets.token_urlsafe(24)
        pg.ensure_login_role("reader", reader)
        conn = await asyncpg.connect(pg.dsn(role="reader", password=reader), timeout=10)
        assert not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        await conn.close()

        # Errors name the server, never the password.
        with pytest.raises(EmbeddedServerError) as failed:
            pg.psql(f"ALTER ROLE nobody PASSWORD '{reader}'", secret=True)
        assert reader not in str(failed.value)
        assert password not in str(failed.value)
        assert password not in repr(pg)
    finally:
        pg.stop()


async def test_a_cluster_made_without_a_password_requires_one_from_its_next_start(scratch: Path) -> None:
    old = EmbeddedPostgres(scratch / "data", durable=False)
    old.start()
    old.psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
    port = old.port
    # Left running (as after an upgrade of wf, with the old server still up) and restarted later.
    password = secrets.token_urlsafe(24)
    pg = EmbeddedPostgres(scratch / "data", durable=False, password=password)
    pg.start()
    try:
        assert pg.port == port
        await _refused(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        assert pg.psql("SELECT v FROM kept").strip() == "still here"
        pg.stop()
        pg.start()
        await _refused(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres")
        conn = await asyncpg.connect(pg.dsn(), timeout=10)
        assert await conn.fetchval("SELECT v FROM kept") == "still here"
        await conn.close()
    finally:
        pg.stop()
