"""`python -m wf_board_api` (what `wf start` runs): settings from the environment, /docs, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wf_cli.embedded import NatsServer, free_port

from tests.board.conftest import API_TOKEN, AUTH_HEADERS
from tests.board.sse import open_stream


@pytest.fixture
def board_process(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port("127.0.0.1")
    env = {
        **os.environ,
        "WF_NATS_URL": nats_server.url,
        "WF_DATABASE_URL": database_url,
        "WF_BOARD_HOST": "127.0.0.1",
        "WF_BOARD_PORT": str(port),
        "WF_API_TOKEN": API_TOKEN,
    }
    env.pop("WF_CONFIG", None)
    # Its log goes to a file, not a pipe nobody reads while it runs (a full pipe would block it).
    with (tmp_path / "board.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "wf_board_api"], env=env, stderr=log)
        LOGS[proc.pid] = tmp_path / "board.log"
        try:
            yield proc, f"http://127.0.0.1:{port}"
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


LOGS: dict[int, Path] = {}


def _log_of(proc: subprocess.Popen[bytes]) -> bytes:
    return LOGS[proc.pid].read_bytes()


async def _wait_until_serving(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90  # a cold start on a loaded 2-core machine
    async with httpx.AsyncClient(base_url=url, headers=AUTH_HEADERS) as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"wf-board-api exited: {_log_of(proc).decode()}"
            try:
                if (await http.get("/api/projects")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"wf-board-api did not start serving:\n{_log_of(proc).decode()[-3000:]}")


async def test_serves_on_the_configured_port_and_stops_promptly_with_streams_open(
    board_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = board_process
    await _wait_until_serving(url, proc)
    async with httpx.AsyncClient(base_url=url, headers=AUTH_HEADERS) as http:
        docs = await http.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        spec = (await http.get("/openapi.json")).json()
        assert "/api/projects/{slug}/tasks/{key}/approve" in spec["paths"]
        assert "/api/events" in spec["paths"]

    async with open_stream(url) as stream:
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(StopAsyncIteration):
            await stream.next(within=10)
    # uvicorn re-raises the signal once it has shut down cleanly, so the exit status is "killed by TERM".
    assert await asyncio.to_thread(proc.wait, 10) in (0, -signal.SIGTERM)
    assert b"Traceback" not in _log_of(proc)


def test_missing_settings_are_named_at_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WF_")}
    result = subprocess.run(
        [sys.executable, "-m", "wf_board_api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "WF_NATS_URL" in result.stderr

    result = subprocess.run(
        [sys.executable, "-m", "wf_board_api"],
        env={
            **env,
            "WF_NATS_URL": "nats://127.0.0.1:1",
            "WF_DATABASE_URL": "postgresql://x@y/z",
            "WF_BOARD_PORT": "x",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "WF_BOARD_PORT" in result.stderr
