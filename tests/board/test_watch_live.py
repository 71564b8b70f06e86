"""`wf watch` on a terminal: the live board. Its state model follows events; the command itself,
run in a pseudo-terminal against a real board API, draws the cards and its keys send commands."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import httpx
from rich.console import Console
from wf_cli.commands.watch_live import LiveBoard
from wf_common.commands import Approve, CreateProject, Pause, SubmitIdea
from wf_orchestrator.app import Orchestrator

from tests.board.conftest import API_TOKEN, CommandTap, new_project

WF = Path(sys.executable).parent / "wf"


def snapshot(key: str, stage: str, state: str, title: str = "Login") -> dict[str, object]:
    return {"project": "demo", "key": key, "title": title, "stage": stage, "state": state, "priority": 5}


def screen(board: LiveBoard) -> str:
    with open(os.devnull, "w") as sink:
        console = Console(width=200, record=True, file=sink)
        console.print(board.render())
        return console.export_text()


def test_the_live_board_follows_events_and_shows_what_the_agent_does() -> None:
    board = LiveBoard(stages=["backlog", "dev", "qa", "done"])
    board.load({"paused": False, "columns": {"dev": [snapshot("T-001", "dev", "queued")]}})
    board.apply("task.state_changed", {"task": snapshot("T-001", "dev", "running"), "task_key": "T-001"})
    board.apply("execution.waiting", {"task_key": "T-001", "execution_id": 1})
    assert "waiting for the model server" in screen(board)
    board.apply(
        "agent.output",
        {"task_key": "T-001", "stage": "dev", "kind": "command_output", "text": "[bold]ok[/bold]\n2 passed"},
    )
    text = screen(board)
    assert "running a command" in text
    assert "[bold]ok[/bold]" in text  # model text is shown as it is, never as markup
    assert "2 passed" in text
    board.apply("task.moved", {"task": snapshot("T-001", "qa", "queued"), "task_key": "T-001"})
    board.apply("task.created", {"task": snapshot("T-002", "dev", "failed", "Logout"), "task_key": "T-002"})
    board.apply("control.changed", {"paused": True})
    text = screen(board)
    assert "PAUSED" in text
    header = next(line for line in text.splitlines() if "backlog" in line)
    assert "failed" in header  # the failed column is shown once something is in it
    board.move(1, 0)
    assert board.selected in ("T-001", "T-002")


def read_until(fd: int, wanted: str, timeout: float = 30) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {wanted!r} on the screen; got {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            seen += os.read(fd, 65536).decode(errors="replace")
    return seen


def watch_on_a_terminal(live_url: str, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """`wf watch ARGS` in a 200x40 pseudo-terminal; returns the process and the terminal's primary fd."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    proc = subprocess.Popen(
        [str(WF), "--url", live_url, "watch", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "TERM": "xterm-256color", "WF_TOKEN": API_TOKEN},
        close_fds=True,
    )
    os.close(secondary)
    return proc, primary


async def test_wf_watch_in_a_terminal_draws_the_board_and_its_keys_send_commands(
    live_url: str, client: httpx.AsyncClient, orchestrator: Orchestrator, commands: CommandTap, tmp_path: Path
) -> None:
    await new_project(client, tmp_path / "demo", slug="demo")
    await client.post("/api/projects/demo/ideas", json={"text": "Login page"})
    proc, primary = watch_on_a_terminal(live_url)
    try:
        await asyncio.to_thread(read_until, primary, "T-001")
        os.write(primary, b"a")  # the orchestrator refuses: an idea waits for its breakdown first
        await asyncio.to_thread(read_until, primary, "refused: T-001")
        os.write(primary, b"p")
        await asyncio.to_thread(read_until, primary, "paused")
        os.write(primary, b"q")
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    kinds = [type(c) for c in commands.sent()]
    assert kinds == [CreateProject, SubmitIdea, Approve, Pause]
    assert (await client.get("/api/control")).json()["paused"] is True


async def test_wf_watch_plain_on_a_terminal_prints_lines_instead_of_the_board(
    live_url: str, client: httpx.AsyncClient, orchestrator: Orchestrator, tmp_path: Path
) -> None:
    await new_project(client, tmp_path / "demo", slug="demo")
    await client.post("/api/projects/demo/ideas", json={"text": "Login page"})
    proc, primary = watch_on_a_terminal(live_url, "--plain", "--replay", "20")
    try:
        seen = await asyncio.to_thread(read_until, primary, "Login page")
        line = next(line for line in seen.splitlines() if "Login page" in line)
        assert "demo" in line  # one readable line per event, naming the project
        assert "T-001" in line
        assert "\x1b[?1049h" not in seen  # never switched to the full-screen board
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 20) in (0, 130)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(primary)
