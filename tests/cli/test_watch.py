"""wf watch: one readable line per event, agent tokens gathered into lines, resumed after a drop."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from typing import Any

from wf_cli.client import SseEvent, parse_sse
from wf_cli.commands.watch import TokenLines, format_line

from tests.cli.conftest import WF
from tests.cli.fake_board import FakeBoard

AT = "2026-01-02T03:04:05+00:00"


def token(seq: int, text: str, job: int = 7, project: str = "listsnap") -> tuple[int, str, dict[str, Any]]:
    data = {
        "type": "agent.output",
        "project": project,
        "task_key": "T-002",
        "at": AT,
        "execution_id": job,
        "stage": "dev",
        "kind": "token",
        "text": text,
    }
    return (seq, "agent.output", data)


def test_sse_parsing_follows_the_spec() -> None:
    lines = iter(
        [
            ": keep-alive",
            "id: 1",
            "event: task.moved",
            'data: {"a":',
            "data: 1}",
            "",
            "data: no id or type",
            "",
            "id: 3",
            "data: cut off",
        ]
    )
    assert list(parse_sse(lines)) == [
        SseEvent("1", "task.moved", '{"a":\n1}'),
        SseEvent("1", "message", "no id or type"),  # the last event id carries over
    ]  # an event the stream ended inside is dropped


def test_event_lines_are_readable() -> None:
    moved = {
        "type": "task.moved",
        "project": "listsnap",
        "task_key": "T-002",
        "at": AT,
        "from_stage": "dev",
        "to_stage": "qa",
        "notes": "tests pass",
        "task": {},
        "handoff_id": 3,
    }
    line = format_line("task.moved", moved)
    assert line.endswith("listsnap T-002  moved dev → qa  tests pass")
    assert line[:8].count(":") == 2  # local HH:MM:SS first
    assert format_line("control.changed", {"type": "control.changed", "paused": True, "at": AT}).endswith(
        "orchestration paused"
    )
    asked = {
        "type": "approval.requested",
        "project": "p",
        "task_key": "T-001",
        "stage": "pm",
        "at": AT,
        "handoff_id": 1,
        "summary": "3 tasks",
    }
    assert "waiting for your approval at pm: 3 tasks" in format_line("approval.requested", asked)
    assert "wf approve T-001" in format_line("approval.requested", asked)
    # unknown types still print something useful
    assert "brand.new" in format_line("brand.new", {"type": "brand.new", "x": 1})


def test_tokens_are_gathered_into_lines_per_job() -> None:
    lines: list[str] = []
    buf = TokenLines(lines.append)
    for _, _, data in [token(1, "Hel"), token(2, "lo "), token(3, "world\nsecond"), token(4, " line")]:
        buf.add(data)
    assert [ln.split("│ ")[1] for ln in lines] == ["Hello world"]
    buf.add(token(5, "other job", job=8)[2])  # another job: the first one's line is finished
    assert lines[-1].endswith("│ second line")
    buf.flush()
    assert lines[-1].endswith("│ other job")
    buf.add(token(6, "\x1b[2Jx" * 100)[2])  # long and hostile: wrapped, escapes gone
    buf.flush()
    assert all("\x1b" not in ln for ln in lines)


def _follow(proc: subprocess.Popen[str], out: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.put(line.rstrip("\n"))


def test_watch_follows_resumes_and_stops_on_ctrl_c(board: FakeBoard) -> None:
    board.events = [
        (
            1,
            "task.moved",
            {
                "type": "task.moved",
                "project": "listsnap",
                "task_key": "T-002",
                "at": AT,
                "from_stage": "pm",
                "to_stage": "dev",
                "notes": "",
                "handoff_id": 1,
            },
        ),
        token(2, "Writing \x1b]0;owned\x07the "),
        token(3, "code"),
        (
            4,
            "task.created",
            {
                "type": "task.created",
                "project": "other",
                "task_key": "T-009",
                "at": AT,
                "task": {"stage": "backlog", "title": "not mine"},
            },
        ),
        (
            5,
            "execution.finished",
            {
                "type": "execution.finished",
                "project": "listsnap",
                "task_key": "T-002",
                "at": AT,
                "execution_id": 7,
                "stage": "dev",
                "status": "completed",
                "summary": "done",
            },
        ),
    ]
    env = {k: v for k, v in os.environ.items() if k != "WF_URL"}
    proc = subprocess.Popen(
        [str(WF), "--url", board.url, "watch", "--project", "listsnap", "--replay", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_follow, args=(proc, lines), daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 20
        # The server ends the stream after event 5; the client comes back asking for what follows 5.
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=0.2))
            resumed = [r for r in board.requests if r.headers.get("last-event-id") == "5"]
            if resumed and any("reconnecting" in s for s in seen):
                break
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
    text = "\n".join(seen)
    assert "listsnap T-002  moved pm → dev" in text
    assert "dev │ Writing the code" in text  # two tokens, one line, escape gone
    assert "dev job #7 completed: done" in text
    assert "not mine" not in text  # --project filters
    assert "\x1b" not in text
    assert "\x07" not in text
    order = [i for i, s in enumerate(seen) if "moved" in s or "Writing" in s or "completed" in s]
    assert len(order) == 3
    assert order == sorted(order)
    assert [r.headers.get("last-event-id") for r in board.requests][:2] == [None, "5"]
    # The server filters by project too; the replay is asked for on the first connection only.
    assert board.requests[0].query == {"project": "listsnap", "replay": "20"}
    assert board.requests[1].query == {"project": "listsnap"}


def test_watch_against_nothing_fails_at_once(dead_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WF_URL"}
    r = subprocess.run(
        [str(WF), "--url", dead_url, "watch"],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
        check=False,
    )
    assert r.returncode == 1
    assert "cannot reach Workflow Hub" in r.stderr
