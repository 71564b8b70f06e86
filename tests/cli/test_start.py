"""`wf start` as a real process, with real NATS and PostgreSQL under a temporary data dir and the real
services (orchestrator, agent runners, board API): order, environment handed to each service (read
from /proc), run.json, restarts, shutdown, durability, and failures induced for real (migrations
that meet a conflicting table, a board whose database role really cannot connect, a taken port).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import nats
import pytest
from wf_cli.embedded import EmbeddedPostgres, free_port, postgres_bin_dir

from tests.cli.conftest import WF, run_wf
from tests.cli.procs import alive, wait_for
from tests.secrets_check import assert_no_secret_leaked


class RunningHub:
    """`wf start` in the background, its output collected line by line."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("WF_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [str(WF), "start", "--data-dir", str(data_dir), "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = 240) -> str:
        """The first line from now on matching `pattern` (a regex). The default wait is long: the real
        services start under whatever else the machine runs (a condition waited for, not a bound)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"wf start ended before {pattern!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n" + "\n".join(self.lines))

    def output(self) -> str:
        while True:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return "\n".join(self.lines)

    def run_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.data_dir / "run.json").read_text())
        return data

    def started_with(self, name: str) -> dict[str, Any]:
        """What the running service `name` was started with: its argv and WF_* environment (/proc)."""
        pid = self.run_json()["services"][name]["pid"]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
        pairs = (e.partition("=") for e in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0"))
        return {"argv": argv, "env": {k: v for k, _, v in pairs if k.startswith("WF_")}}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Kill it if still running, and close its output pipe once the reader has drained it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def work() -> Iterator[Path]:
    """A directory for tests that run PostgreSQL, outside pytest's base temp dir: as root the server
    runs as another user, which loses its way in when another pytest session starting meanwhile
    resets /tmp/pytest-of-<user> to mode 0700."""
    path = Path(tempfile.mkdtemp(prefix="wf-cli-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def hubs() -> Iterator[list[RunningHub]]:
    started: list[RunningHub] = []
    yield started
    for hub in started:
        hub.kill()
        # What a killed `wf start` leaves running: its detached PostgreSQL.
        EmbeddedPostgres(hub.data_dir / "postgres").stop()


def secret(data: Path, name: str) -> str:
    return (data / "secrets" / name).read_text().strip()


def psql(data: Path, port: int, sql: str) -> str:
    """SQL as the superuser, with the password `wf start` made (in PGPASSWORD, as psql reads it)."""
    cmd = [
        str(postgres_bin_dir() / "psql"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        "postgres",
        "-d",
        "workflow",
        "-tA",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
    ]
    env = {**os.environ, "PGPASSWORD": secret(data, "postgres-postgres")}
    return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.strip()


def login_url(data: Path, run: dict[str, Any], kind: str = "cli") -> str:
    return f"nats://{kind}:{secret(data, f'nats-{kind}')}@127.0.0.1:{run['nats']['port']}"


def _nats_refusal(url: str) -> str:
    """What the server says to a client that logs in without credentials: NATS's own wire protocol
    over a plain socket, closed here (nats-py leaves a refused connection's socket to the garbage
    collector, which then warns in whichever test runs next)."""
    where = urlsplit(url)
    assert where.hostname is not None
    assert where.port is not None
    with socket.create_connection((where.hostname, where.port), timeout=30) as conn:
        greeting = b""
        while b"\r\n" not in greeting:  # INFO {...}
            chunk = conn.recv(4096)
            assert chunk, "the server closed before its INFO"
            greeting += chunk
        conn.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.decode(errors="replace")


async def _publish(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="WFTEST", subjects=["wftest.>"])
    await js.publish("wftest.a", b"kept")
    await nc.close()


async def _stored_messages(url: str) -> int:
    nc = await nats.connect(url)
    info = await nc.jetstream().stream_info("WFTEST")
    await nc.close()
    return int(info.state.messages)


@pytest.mark.timeout(900)  # two starts of the real stack, on a machine that may be busy
def test_start_supervise_stop_and_resume(work: Path, hubs: list[RunningHub]) -> None:
    config = work / "config.yaml"
    config.write_text("runner:\n  count: 2\n  stages: [dev, qa]\n")
    data = work / "data"
    hub = RunningHub(data, "--config", str(config))
    hubs.append(hub)

    hub.expect(rf"^Workflow Hub is up at http://127\.0\.0\.1:{hub.port}$")
    token = secret(data, "api-token")
    assert hub.expect(r"Open the board").endswith(f"http://127.0.0.1:{hub.port}/?token={token}")
    run = hub.run_json()
    assert run["status"] == "up"
    assert run["pid"] == hub.proc.pid
    assert run["board"] == {"url": f"http://127.0.0.1:{hub.port}", "host": "127.0.0.1", "port": hub.port}
    assert list(run["services"]) == ["orchestrator", "runner-1", "runner-2", "board-api"]
    assert all(alive(s["pid"]) for s in run["services"].values())
    assert run["nats"]["embedded"]
    assert run["postgres"]["embedded"]
    assert (data / "logs" / "runner-1.log").exists()

    # Migrations ran before the services (their log is there, the schema is at a revision); each
    # service got its own settings.
    assert (data / "logs" / "migrate.log").exists()
    assert psql(data, run["postgres"]["port"], "SELECT count(*) FROM alembic_version") == "1"
    orch = hub.started_with("orchestrator")
    assert orch["argv"][1:] == ["-m", "wf_orchestrator"]
    env = orch["env"]
    assert env["WF_CONFIG"] == str(config)
    # Each kind of service logs in to NATS as itself, and to PostgreSQL with its own role.
    pg = f"127.0.0.1:{run['postgres']['port']}/workflow"
    assert env["WF_NATS_URL"] == login_url(data, run, "orchestrator")
    assert (
        env["WF_DATABASE_URL"]
        == f"postgresql+asyncpg://wf_orchestrator:{secret(data, 'postgres-wf_orchestrator')}@{pg}"
    )
    assert env["WF_LOG_LEVEL"] == "INFO"
    assert "WF_API_TOKEN" not in env
    runner_env = {k: v for k, v in env.items() if k != "WF_DATABASE_URL"}
    assert hub.started_with("runner-2")["env"] | {} == {
        **runner_env,
        "WF_NATS_URL": login_url(data, run, "runner"),
        "WF_RUNNER_ID": "runner-2",
        "WF_STAGES": "dev,qa",
    }
    board_env = hub.started_with("board-api")["env"]
    assert (board_env["WF_BOARD_PORT"], board_env["WF_BOARD_HOST"]) == (str(hub.port), "127.0.0.1")
    assert board_env["WF_API_TOKEN"] == token
    assert board_env["WF_NATS_URL"] == login_url(data, run, "board")
    assert (
        board_env["WF_DATABASE_URL"]
        == f"postgresql+asyncpg://wf_board:{secret(data, 'postgres-wf_board')}@{pg}"
    )

    # Secrets stay in files only their owner reads, and nowhere else: not in run.json, not in the
    # logs, not on any process's command line.
    assert stat.S_IMODE((data / "secrets").stat().st_mode) == 0o700
    assert {stat.S_IMODE(f.stat().st_mode) for f in (data / "secrets").iterdir()} == {0o600}
    assert_no_secret_leaked(data, [run["nats"]["pid"], run["postgres"]["pid"], hub.proc.pid])
    # Without the credentials, neither server lets anyone in.
    assert "authorization violation" in _nats_refusal(run["nats"]["url"]).lower()
    anonymous = subprocess.run(
        [str(postgres_bin_dir() / "psql"), "-h", "127.0.0.1", "-p", str(run["postgres"]["port"]),
         "-U", "postgres", "-d", "workflow", "-w", "-c", "SELECT 1"],
        capture_output=True, text=True, check=False, env={**os.environ, "PGPASSWORD": ""},
    )  # fmt: skip
    assert anonymous.returncode != 0
    assert "password" in anonymous.stderr
    assert re.search(
        r"runner-1\s+\| .*runner runner-1 serving \['dev', 'qa'\]", hub.output()
    )  # prefixed copy

    # Some state to find again after a restart.
    psql(data, run["postgres"]["port"], "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
    # (A stream of our own: only the orchestrator's login may make one.)
    asyncio.run(_publish(login_url(data, run, "orchestrator")))

    # Only one wf start per data dir.
    second = run_wf("start", "--data-dir", str(data), "--port", str(free_port()))
    assert second.code == 1
    assert f"(pid {hub.proc.pid})" in second.err

    # A runner that dies is restarted after 1 s, with a new pid in run.json.
    old = run["services"]["runner-1"]["pid"]
    os.kill(old, signal.SIGKILL)
    hub.expect(r"runner-1 was killed by SIGKILL after [\d.]+s; restarting in 1s", 60)
    wait_for(lambda: hub.run_json()["services"]["runner-1"]["restarts"] == 1, 60, "the restart")
    new = hub.run_json()["services"]["runner-1"]["pid"]
    assert new != old
    assert alive(new)

    # Set now, it holds from the next start on (the board's open connections stay).
    psql(data, run["postgres"]["port"], "ALTER ROLE wf_board CONNECTION LIMIT 0")

    # SIGTERM: everything stops, exit 0, run.json removed.
    pids = [s["pid"] for s in hub.run_json()["services"].values()]
    server_pids = [run["nats"]["pid"], run["postgres"]["pid"]]
    assert hub.stop(signal.SIGTERM) == 0
    assert not any(alive(p) for p in pids + server_pids)
    assert not (data / "run.json").exists()
    assert (data / "wf.lock").read_text() == ""
    out = hub.output()
    assert "stopping services" in out
    assert out.rstrip().endswith("stopped")

    # The board's database role really cannot connect (a limit set by hand in PostgreSQL): the next
    # start says why the board is not healthy, keeps trying, and is up once the role may connect.
    again = RunningHub(data, "--config", str(config), "--health-timeout", "1")
    hubs.append(again)
    assert "Still trying" in again.expect(r"not healthy after 1s")

    def board_health() -> dict[str, Any] | None:
        try:
            answer = httpx.get(f"http://127.0.0.1:{again.port}/health", timeout=5)
        except httpx.HTTPError:
            return None  # not listening yet
        body: dict[str, Any] = answer.json()
        return body if answer.status_code == 503 and body["checks"]["database"] != "ok" else None

    wait_for(board_health, 240, "the board to answer that its database is down")
    health = board_health()
    assert health is not None
    assert health["checks"]["nats"] == "ok"
    assert "wf_board" in health["checks"]["database"], health  # PostgreSQL names the refused role
    assert again.run_json()["status"] == "starting"
    psql(data, again.run_json()["postgres"]["port"], "ALTER ROLE wf_board CONNECTION LIMIT -1")
    again.expect(r"^Workflow Hub is up")

    # Started again: same ports, and nothing was lost.
    run2 = again.run_json()
    assert run2["nats"]["port"] == run["nats"]["port"]
    assert run2["postgres"]["port"] == run["postgres"]["port"]
    assert psql(data, run2["postgres"]["port"], "SELECT v FROM kept") == "still here"
    assert asyncio.run(_stored_messages(login_url(data, run2))) == 1
    assert secret(data, "api-token") == token  # the same token: the printed link still works
    assert again.stop(signal.SIGINT) == 0


def test_a_bad_config_names_the_field_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("llm_backend:\n  adapter: olama\n")
    r = run_wf("start", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert r.code == 2
    assert "llm_backend.adapter" in r.err
    assert "'ollama'" in r.err
    assert not (tmp_path / "data").exists()
    r = run_wf("start", "--config", str(tmp_path / "missing.yaml"), "--data-dir", str(tmp_path / "data"))
    assert r.code == 2
    assert "no such config file" in r.err


def test_failed_migrations_stop_everything_and_say_why(
    work: Path, hubs: list[RunningHub], pg_server: EmbeddedPostgres
) -> None:
    """A database (given with WF_DATABASE_URL) that already holds a table the first migration makes:
    the migration really fails, and nothing else starts."""
    name = f"taken_{uuid.uuid4().hex[:12]}"
    pg_server.create_database(name)
    try:
        pg_server.psql("CREATE TABLE agents (note text)", database=name)
        hub = RunningHub(work / "data", env={"WF_DATABASE_URL": pg_server.async_url(name)})
        hubs.append(hub)
        assert hub.proc.wait(120) == 1
        out = hub.output()
        assert re.search(r"database migrations failed \(exit code \d+\)", out), out
        assert 'relation "agents" already exists' in out  # the tail of logs/migrate.log
        assert out.rstrip().endswith("stopped")
        assert not (work / "data" / "logs" / "orchestrator.log").exists()  # no service was started
        assert not (work / "data" / "run.json").exists()
    finally:
        pg_server.drop_database(name)


def test_a_taken_board_port_is_reported_before_starting(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_wf("start", "--data-dir", str(tmp_path / "data"), "--port", str(port))
    assert r.code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in r.out + r.err
    assert not (tmp_path / "data" / "nats").exists()
