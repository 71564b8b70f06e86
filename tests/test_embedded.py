"""The embedded servers behind `wf start` and the test fixtures: real nats-server and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import nats
import psutil
import pytest
from wf_cli.embedded import EmbeddedPostgres, EmbeddedServerError, NatsServer, free_port

from tests.fixtures.servers import server_scratch_dir

# ---------------------------------------------------------------------------------------- helpers


def _listening_socket() -> socket.socket:
    """Hold a port the way another program would: bound and listening on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _wait_dead(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still running"
        time.sleep(0.02)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - a local http URL
        return json.load(resp)


async def _publish(url: str, *payloads: bytes) -> list[int]:
    """Publish to stream ORDERS (created if missing); returns the acked sequence numbers."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        return [(await js.publish("orders.new", p)).seq for p in payloads]
    finally:
        await nc.close()


async def _stored(url: str) -> list[bytes]:
    """Every message in stream ORDERS, in order."""
    nc = await nats.connect(url)
    try:
        jsm = nc.jsm()
        info = await jsm.stream_info("ORDERS")
        return [
            (await jsm.get_msg("ORDERS", seq)).data or b""
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await nc.close()


async def _scalar(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def _execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def make_pg() -> Iterator[Callable[..., EmbeddedPostgres]]:
    """EmbeddedPostgres objects on a scratch dir; whatever runs on their data dirs is stopped afterwards."""
    created: list[EmbeddedPostgres] = []

    def make(name: str = "pg", **kwargs: object) -> EmbeddedPostgres:
        pg = EmbeddedPostgres(scratch / name, **kwargs)  # type: ignore[arg-type]
        created.append(pg)
        return pg

    with server_scratch_dir() as scratch:
        yield make
        for pg in created:
            pg.stop()


# ---------------------------------------------------------------------------------------- NATS


async def test_nats_server_serves_jetstream(nats_server: NatsServer) -> None:
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    assert nats_server.pid is not None
    assert _alive(nats_server.pid)

    assert await _publish(nats_server.url, b"a", b"b", b"c") == [1, 2, 3]
    assert await _stored(nats_server.url) == [b"a", b"b", b"c"]

    jsz = await asyncio.to_thread(_get_json, f"{nats_server.monitor_url}/jsz")
    assert jsz["streams"] == 1


async def test_nats_fixture_gives_each_test_empty_jetstream(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        assert (await nc.jsm().account_info()).streams == 0
    finally:
        await nc.close()


async def test_jetstream_messages_survive_stop_kill_and_restart(tmp_path: Path) -> None:
    store = tmp_path / "nats"
    server = NatsServer(store).start()
    try:
        first_url = server.url
        await _publish(server.url, b"before stop")
        server.stop()
        assert server.pid is None
        assert not _accepts(server.port)

        # Same object: same URL, so connected clients can reconnect.
        server.start()
        assert server.url == first_url
        assert await _stored(server.url) == [b"before stop"]
        await _publish(server.url, b"before crash")

        crashed_pid = server.pid
        assert crashed_pid is not None
        server.kill()
        assert not _alive(crashed_pid)
    finally:
        server.stop()

    # A new object on the same store dir (next `wf start`) prefers the same ports.
    with NatsServer(store) as again:
        assert again.url == first_url
        assert await _stored(again.url) == [b"before stop", b"before crash"]


async def test_nats_start_on_busy_port_fails_with_clear_error(tmp_path: Path) -> None:
    with _listening_socket() as busy:
        port = busy.getsockname()[1]
        server = NatsServer(tmp_path / "nats", port=port)
        with pytest.raises(EmbeddedServerError) as excinfo:
            server.start()
    message = str(excinfo.value)
    assert f"127.0.0.1:{port}" in message
    assert "address already in use" in message.lower()  # from the server log's tail
    assert server.pid is None


async def test_nats_server_left_running_by_killed_owner_is_replaced(tmp_path: Path) -> None:
    store = tmp_path / "nats"
    owner_script = (
        "import sys, time; from pathlib import Path; from wf_cli.embedded import NatsServer; "
        "s = NatsServer(Path(sys.argv[1])).start(); print(s.pid, s.url, flush=True); time.sleep(600)"
    )
    owner = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-c", owner_script, str(store)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    pid_text, url = owner.stdout.readline().split()
    orphan_pid = int(pid_text)
    try:
        await _publish(url, b"from the first run")
        owner.send_signal(signal.SIGKILL)  # the supervisor dies without stopping its servers
        owner.wait()
        owner.stdout.close()
        assert _alive(orphan_pid)  # the server outlived its owner, still holding the store dir

        with NatsServer(store) as server:
            assert not _alive(orphan_pid)  # stopped, not left to share the store dir
            assert server.url == url
            assert await _stored(server.url) == [b"from the first run"]
    finally:
        if _alive(orphan_pid):
            os.kill(orphan_pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------- PostgreSQL


async def test_pg_server_accepts_asyncpg_connections(pg_server: EmbeddedPostgres) -> None:
    assert pg_server.url == f"postgresql+asyncpg://postgres@127.0.0.1:{pg_server.port}/postgres"
    assert pg_server.dsn("x") == f"postgresql://postgres@127.0.0.1:{pg_server.port}/x"
    conn = await asyncpg.connect(pg_server.dsn("postgres"))
    try:
        assert conn.get_server_version().major == 18
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        assert await conn.fetchval("SELECT upper('crème brûlée')") == "CRÈME BRÛLÉE"  # Unicode-aware
        assert await conn.fetchval("SHOW fsync") == "off"  # durable=False for tests
        assert await conn.fetchval("SHOW synchronous_commit") == "off"
    finally:
        await conn.close()


async def test_empty_database_url_is_a_fresh_database(
    empty_database_url: str, pg_server: EmbeddedPostgres
) -> None:
    assert empty_database_url.startswith(f"postgresql+asyncpg://postgres@127.0.0.1:{pg_server.port}/test_")
    dsn = empty_database_url.replace("postgresql+asyncpg://", "postgresql://")
    tables = await _scalar(dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    assert tables == 0
    await _execute(dsn, "CREATE TABLE t (x int)")


async def test_create_database_from_template_copies_tables(pg_server: EmbeddedPostgres) -> None:
    template, copy = f"tpl_{os.getpid()}", f"copy_{os.getpid()}"
    pg_server.create_database(template)
    try:
        await _execute(
            pg_server.dsn(template),
            "CREATE TABLE tasks (id int PRIMARY KEY, title text)",
            "INSERT INTO tasks VALUES (1, 'migrated row')",
        )
        pg_server.create_database(copy, template=template)
        assert await _scalar(pg_server.dsn(copy), "SELECT title FROM tasks WHERE id = 1") == "migrated row"

        # The copy is independent of its template.
        await _execute(pg_server.dsn(copy), "INSERT INTO tasks VALUES (2, 'only in copy')")
        assert await _scalar(pg_server.dsn(template), "SELECT count(*) FROM tasks") == 1

        # drop_database succeeds even while someone is connected, and the database is gone.
        held = await asyncpg.connect(pg_server.dsn(copy))
        pg_server.drop_database(copy)
        assert held.is_closed() or not await _connection_works(held)
        exists = await _scalar(pg_server.dsn(), f"SELECT count(*) FROM pg_database WHERE datname = '{copy}'")  # noqa: S608 - test SQL with trusted identifiers
        assert exists == 0
    finally:
        pg_server.drop_database(copy)
        pg_server.drop_database(template)


async def _connection_works(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
        return True  # noqa: TRY300 - kept in the try on purpose
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    finally:
        conn.terminate()


async def test_copying_a_template_in_use_fails_with_postgres_reason(pg_server: EmbeddedPostgres) -> None:
    template = f"busy_tpl_{os.getpid()}"
    pg_server.create_database(template)
    conn = await asyncpg.connect(pg_server.dsn(template))
    try:
        with pytest.raises(EmbeddedServerError, match="is being accessed by other users"):
            pg_server.create_database(f"{template}_copy", template=template)
    finally:
        await conn.close()
        pg_server.drop_database(template)


async def test_postgres_restart_keeps_data_and_port(make_pg: Callable[..., EmbeddedPostgres]) -> None:
    pg = make_pg().start()  # durable=True: the wf start default
    assert await _scalar(pg.dsn(), "SHOW fsync") == "on"
    await _execute(pg.dsn(), "CREATE TABLE notes (body text)", "INSERT INTO notes VALUES ('kept')")
    pg.stop()
    assert not _accepts(pg.port)
    assert pg.pid is None

    again = make_pg().start()  # a new object, as in the next `wf start`
    assert again.port == pg.port
    assert await _scalar(again.dsn(), "SELECT body FROM notes") == "kept"


async def test_postgres_left_running_by_dropped_owner_is_reused(
    make_pg: Callable[..., EmbeddedPostgres],
) -> None:
    first = make_pg(durable=False).start()
    await _execute(first.dsn(), "CREATE TABLE notes (body text)", "INSERT INTO notes VALUES ('kept')")
    server_pid, port = first.pid, first.port
    del first  # the owner goes away without stop(): the server keeps running

    second = make_pg(durable=False).start()
    assert second.pid == server_pid  # reused, not restarted
    assert second.port == port
    assert await _scalar(second.dsn(), "SELECT body FROM notes") == "kept"

    second.stop()  # the new owner can stop it
    assert server_pid is not None
    _wait_dead(server_pid)
    assert not _accepts(port)


async def test_postgres_left_running_on_other_port_is_moved_to_requested_port(
    make_pg: Callable[..., EmbeddedPostgres],
) -> None:
    first = make_pg(durable=False).start()
    await _execute(first.dsn(), "CREATE TABLE notes (body text)", "INSERT INTO notes VALUES ('kept')")
    wanted = free_port()

    second = make_pg(port=wanted, durable=False).start()
    assert second.port == wanted
    assert await _scalar(second.dsn(), "SELECT body FROM notes") == "kept"
    assert not _accepts(first.port)


async def test_postgres_recovers_after_server_killed(make_pg: Callable[..., EmbeddedPostgres]) -> None:
    pg = make_pg().start()
    await _execute(pg.dsn(), "CREATE TABLE notes (body text)", "INSERT INTO notes VALUES ('committed')")
    pid = pg.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # crash: postmaster.pid stays behind
    _wait_dead(pid)
    assert (pg.data_dir / "postmaster.pid").exists()

    again = make_pg().start()
    assert again.pid != pid
    assert await _scalar(again.dsn(), "SELECT body FROM notes") == "committed"


async def test_postgres_moves_to_new_port_when_remembered_one_is_taken(
    make_pg: Callable[..., EmbeddedPostgres],
) -> None:
    pg = make_pg(durable=False).start()
    old_port = pg.port
    pg.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # old connections in TIME_WAIT
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        again = make_pg(durable=False).start()
        assert again.port != old_port
        assert await _scalar(again.dsn(), "SELECT 1") == 1
    # ...and the new port is the one remembered for next time.
    again.stop()
    assert make_pg(durable=False).port == again.port


async def test_postgres_start_on_busy_port_fails_with_clear_error(
    make_pg: Callable[..., EmbeddedPostgres],
) -> None:
    with _listening_socket() as busy:
        port = busy.getsockname()[1]
        pg = make_pg(port=port, durable=False)
        with pytest.raises(EmbeddedServerError) as excinfo:
            pg.start()
    message = str(excinfo.value)
    assert "PostgreSQL start failed" in message
    assert f"127.0.0.1:{port}" in message
    assert "Address already in use" in message  # from the server log's tail
    assert pg.pid is None


async def test_postgres_works_in_a_deep_data_dir(make_pg: Callable[..., EmbeddedPostgres]) -> None:
    # The unix socket path limit (107 bytes) would be exceeded inside this data dir.
    pg = make_pg("deep/" + "d" * 60 + "/" + "e" * 60, durable=False).start()
    assert len(str(pg.data_dir)) > 107
    assert await _scalar(pg.dsn(), "SELECT 1") == 1


async def test_nats_moves_to_new_port_when_remembered_one_is_taken(tmp_path: Path) -> None:
    store = tmp_path / "nats"
    with NatsServer(store) as first:
        await _publish(first.url, b"kept")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # old connections in TIME_WAIT
        squatter.bind(("127.0.0.1", first.port))
        squatter.listen()
        with NatsServer(store) as again:
            assert again.port != first.port
            assert await _stored(again.url) == [b"kept"]
