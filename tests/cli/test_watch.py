"""wf watch: one readable line per event, agent tokens gathered into lines, resumed after a drop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import nats
from wf_cli.client import SseEvent, parse_sse
from wf_cli.commands.watch import TokenLines, format_line
from wf_common import bus
from wf_common.events import AgentOutput

from tests.cli.conftest import WF
from tests.fixtures.stack import LiveStack

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


def _publish(stack: LiveStack, *events: AgentOutput) -> None:
    """Publish what a runner streams while it works (agent.output on wf.events)."""

    async def send() -> None:
        nc = await nats.connect(stack.nats_url)
        try:
            js = nc.jetstream()
            for event in events:
                await bus.publish(js, event.subject(), event)
        finally:
            await nc.close()

    asyncio.run(send())


def test_watch_follows_resumes_and_stops_on_ctrl_c(live_stack: LiveStack, tmp_path: Path) -> None:
    headers, url = live_stack.headers, live_stack.url
    env = {k: v for k, v in os.environ.items() if k != "WF_URL"} | {"WF_TOKEN": live_stack.token}
    response = httpx.post(
        f"{url}/api/projects", json={"slug": "watched", "workspace": str(tmp_path / "w")}, headers=headers
    )
    assert response.status_code == 201, response.text
    other = httpx.post(
        f"{url}/api/projects", json={"slug": "other", "workspace": str(tmp_path / "o")}, headers=headers
    )
    assert other.status_code == 201, other.text
    proc = subprocess.Popen(
        [str(WF), "--url", url, "watch", "--project", "watched", "--replay", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_follow, args=(proc, lines), daemon=True).start()
    seen: list[str] = []

    def wait_for_line(part: str) -> None:
        deadline = time.monotonic() + 30
        while not any(part in s for s in seen):
            if time.monotonic() > deadline:
                raise AssertionError(f"wf watch printed no line with {part!r}: {seen}")
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=0.2))

    try:
        httpx.post(f"{url}/api/projects/watched/ideas", json={"text": "Lists"}, headers=headers)
        httpx.post(f"{url}/api/projects/other/ideas", json={"text": "not mine"}, headers=headers)
        wait_for_line("watched T-001")
        tokens = [
            AgentOutput(project="watched", task_key="T-001", execution_id=1, stage="pm", kind="token", text=t)
            for t in ("Writing \x1b]0;owned\x07the ", "code\n")
        ]
        _publish(live_stack, *tokens)
        wait_for_line("Writing the code")
        # The board goes away and comes back: watch reconnects and resumes after the last event it saw.
        live_stack.restart_board()
        wait_for_line("reconnecting")
        before = len(seen)
        httpx.post(
            f"{url}/api/projects/watched/tasks/T-001/feedback",
            json={"text": "after the restart"},
            headers=headers,
        )
        wait_for_line("after the restart")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    text = "\n".join(seen)
    assert "pm │ Writing the code" in text  # two tokens, one line, escape gone
    assert "not mine" not in text  # --project filters
    assert "other" not in text
    assert "\x1b" not in text
    assert "\x07" not in text
    # Resumed, not replayed: nothing seen before the restart comes again.
    assert not any("Writing" in s or "created" in s for s in seen[before:]), seen[before:]


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
