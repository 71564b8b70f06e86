"""`wf start` as a real process, with real NATS and PostgreSQL under a temporary data dir and
stand-in services (tests/cli/fake_services, put first on PYTHONPATH) in place of the real ones.

The end-to-end test with the real services lives elsewhere; this one pins the supervisor's own
behaviour: order, environment handed to each service, run.json, restarts, shutdown, durability.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from wf_cli.embedded import EmbeddedPostgres, free_port, postgres_bin_dir

from tests.cli.conftest import WF, run_wf
from tests.cli.procs import alive, wait_for
from tests.secrets_check import assert_no_secret_leaked

FAKES = Path(__file__).parent / "fake_services"


class RunningHub:
    """`wf start` in the background, its output collected line by line."""

    def __init__(self, data_dir: Path, out_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.out_dir = out_dir
        self.port = free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("WF_", "FAKE_"))}
        full_env.update(PYTHONPATH=str(FAKES), FAKE_OUT=str(out_dir), **(env or {}))
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

    def expect(self, pattern: str, timeout: float = 60) -> str:
        """The first line from now on matching `pattern` (a regex)."""
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
        data: dict[str, Any] = json.loads((self.out_dir / f"{name}.json").read_text())
        return data

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


async def _nats_refusal(url: str) -> str:
    """What the server said to a client that came without credentials."""
    errors: list[str] = []

    async def on_error(err: Exception) -> None:
        errors.append(str(err))

    with pytest.raises((nats.errors.NoServersError, nats.errors.Error, OSError)):
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, error_cb=on_error)
    return " ".join(errors)


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


def test_start_supervise_stop_and_resume(work: Path, hubs: list[RunningHub]) -> None:
    config = work / "config.yaml"
    config.write_text("runner:\n  count: 2\n  stages: [dev, qa]\n")
    data = work / "data"
    hub = RunningHub(data, work / "out", "--config", str(config))
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

    # Migrations ran before the services, with the same settings; each service got its own.
    migrate, orch = hub.started_with("migrate"), hub.started_with("orchestrator")
    assert migrate["argv"][1:] == ["migrate"]
    assert migrate["env"] == orch["env"]
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
    assert "authorization violation" in asyncio.run(_nats_refusal(run["nats"]["url"])).lower()
    anonymous = subprocess.run(
        [str(postgres_bin_dir() / "psql"), "-h", "127.0.0.1", "-p", str(run["postgres"]["port"]),
         "-U", "postgres", "-d", "workflow", "-w", "-c", "SELECT 1"],
        capture_output=True, text=True, check=False, env={**os.environ, "PGPASSWORD": ""},
    )  # fmt: skip
    assert anonymous.returncode != 0
    assert "password" in anonymous.stderr
    assert "runner-1 | runner-1 started" in hub.output().replace("    ", "")  # prefixed copy

    # Some state to find again after a restart.
    psql(data, run["postgres"]["port"], "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
    asyncio.run(_publish(login_url(data, run)))

    # Only one wf start per data dir.
    second = run_wf("start", "--data-dir", str(data), "--port", str(free_port()))
    assert second.code == 1
    assert f"(pid {hub.proc.pid})" in second.err

    # A runner that dies is restarted after 1 s, with a new pid in run.json.
    old = run["services"]["runner-1"]["pid"]
    os.kill(old, signal.SIGKILL)
    hub.expect(r"runner-1 was killed by SIGKILL after [\d.]+s; restarting in 1s", 10)
    wait_for(lambda: hub.run_json()["services"]["runner-1"]["restarts"] == 1, 10, "the restart")
    new = hub.run_json()["services"]["runner-1"]["pid"]
    assert new != old
    assert alive(new)

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

    # Starting again: same ports, and nothing was lost.
    again = RunningHub(data, work / "out2", "--config", str(config))
    hubs.append(again)
    again.expect(r"^Workflow Hub is up")
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


def test_failed_migrations_stop_everything_and_say_why(work: Path, hubs: list[RunningHub]) -> None:
    hub = RunningHub(work / "data", work / "out", env={"FAKE_MIGRATE_FAIL": "1"})
    hubs.append(hub)
    assert hub.proc.wait(60) == 1
    out = hub.output()
    assert "database migrations failed (exit code 3)" in out, out
    assert "migration 0001 failed: relation already exists" in out  # the tail of logs/migrate.log
    assert out.rstrip().endswith("stopped")
    assert not (work / "out" / "orchestrator.json").exists()
    assert not (work / "data" / "postgres" / "postmaster.pid").exists()
    assert not (work / "data" / "run.json").exists()


def test_a_board_that_never_gets_healthy_is_explained(work: Path, hubs: list[RunningHub]) -> None:
    body = json.dumps(
        {"status": "degraded", "checks": {"nats": "ok", "database": "down: connection refused"}}
    )
    hub = RunningHub(
        work / "data",
        work / "out",
        "--health-timeout",
        "1",
        env={"FAKE_HEALTH_STATUS": "503", "FAKE_HEALTH_BODY": body},
    )
    hubs.append(hub)
    line = hub.expect(r"not healthy after 1s")
    assert "answered 503: database: down: connection refused" in line
    assert "nats" not in line.split("answered")[1]
    assert hub.run_json()["status"] == "starting"
    assert hub.stop() == 0


def test_a_taken_board_port_is_reported_before_starting(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_wf("start", "--data-dir", str(tmp_path / "data"), "--port", str(port))
    assert r.code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in r.out + r.err
    assert not (tmp_path / "data" / "nats").exists()
