"""wf watch: the live terminal board (watch_live) on a terminal; `--plain` (or output to a pipe or
file) follows /api/events and prints one readable line per event.

Agent tokens arrive one word at a time; they are gathered per job and printed a line at a time (at a
newline, when the line gets long, when another event comes, or after a short pause). The stream is
resumed after a dropped connection with Last-Event-ID, so nothing is missed or printed twice.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wf_cli.client import HubClient, SseEvent
from wf_cli.commands.common import add_project_flag, task_key
from wf_cli.errors import ApiError, CliError
from wf_cli.text import cell, clean, shorten

IDLE_FLUSH_SECONDS = 0.5
LINE_WIDTH = 160
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    w = sub.add_parser("watch", help="follow what the agents and the pipeline do, live", parents=[parent])
    add_project_flag(w, what="only this project's events")
    w.add_argument("--task", type=task_key, metavar="KEY", help="only this task's events")
    w.add_argument("--replay", type=int, metavar="N", help="first show the last N events (up to 1000)")
    w.add_argument(
        "--plain",
        action="store_true",
        help="one line per event (the default when the output is not a terminal), instead of the live board",
    )
    w.set_defaults(func=watch)


# ---------------------------------------------------------------------- formatting


def _clock(data: dict[str, Any]) -> str:
    try:
        return datetime.fromisoformat(str(data.get("at"))).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return datetime.now().strftime("%H:%M:%S")


def _who(data: dict[str, Any]) -> str:
    project, key = data.get("project"), data.get("task_key")
    if not project:
        return ""
    return cell(project, 40) + (f" {cell(key, 12)}" if key else "")


def _task(data: dict[str, Any]) -> dict[str, Any]:
    t = data.get("task")
    return t if isinstance(t, dict) else {}


def _bug(data: dict[str, Any]) -> dict[str, Any]:
    b = data.get("bug")
    return b if isinstance(b, dict) else {}


def _job(data: dict[str, Any]) -> str:
    return f"{cell(data.get('stage'), 20)} job #{cell(data.get('execution_id'), 10)}"


def describe(kind: str, data: dict[str, Any]) -> str:
    """What happened, in a few words (without time and task)."""

    def c(key: str, width: int = 80) -> str:
        return cell(data.get(key), width)

    match kind:
        case "project.created":
            snap = data.get("snapshot")
            snap = snap if isinstance(snap, dict) else {}
            return f"project created (workspace {cell(snap.get('workspace'), 100)})"
        case "task.created":
            t = _task(data)
            return f"task created in {cell(t.get('stage'), 20)}: {cell(t.get('title'), 100)}"
        case "task.updated":
            changes = data.get("changes")
            changes = changes if isinstance(changes, dict) else {}
            return f"task edited: {cell(', '.join(map(str, changes)) or '-', 100)}"
        case "task.moved":
            notes = f"  {c('notes', 100)}" if data.get("notes") else ""
            return f"moved {c('from_stage', 20)} → {c('to_stage', 20)}{notes}"
        case "task.state_changed":
            why = f" ({c('reason', 100)})" if data.get("reason") else ""
            return f"{c('from_state', 20)} → {c('to_state', 20)}{why}"
        case "execution.dispatched":
            return f"{_job(data)} queued (attempt {c('attempt', 4)})"
        case "execution.started":
            return f"{_job(data)} started on {c('runner_id', 40)}"
        case "execution.finished":
            summary = f": {c('summary', 120)}" if data.get("summary") else ""
            return f"{_job(data)} {c('status', 12)}{summary}"
        case "agent.output":
            return (
                f"{cell(data.get('stage'), 20)} {cell(data.get('kind'), 16)}: {cell(data.get('text'), 140)}"
            )
        case "bug.created":
            b = _bug(data)
            found = f"found in {cell(b.get('source_stage'), 20)}"
            return f"bug {cell(b.get('key'), 12)} {found}: {cell(b.get('title'), 100)}"
        case "bug.fixed":
            return f"bug {cell(_bug(data).get('key'), 12)} fixed"
        case "bug.killed":
            why = f" ({c('reason', 100)})" if data.get("reason") else ""
            return f"bug {cell(_bug(data).get('key'), 12)} killed{why}"
        case "approval.requested":
            summary = f": {c('summary', 100)}" if data.get("summary") else ""
            key = cell(data.get("task_key"), 12)
            how = f"(wf approve {key} / wf reject {key} --reason ...)"
            return f"waiting for your approval at {c('stage', 20)}{summary}  {how}"
        case "approval.granted":
            return f"approved at {c('stage', 20)} by {c('actor', 40)}"
        case "approval.rejected":
            return f"rejected at {c('stage', 20)} by {c('actor', 40)}: {c('reason', 100)}"
        case "feedback.added":
            return f"feedback from {c('actor', 40)}: {c('text', 120)}"
        case "control.changed":
            return "orchestration paused" if data.get("paused") else "orchestration resumed"
        case "stream.gap":
            return (
                "some events are missing here (too old, no longer kept); wf status shows the board as it is"
            )
    rest = {
        k: v
        for k, v in data.items()
        if k not in ("type", "id", "at", "project", "task_key", "schema_version")
    }
    return f"{cell(kind, 40)} {cell(json.dumps(rest, default=str), 140)}"


def format_line(kind: str, data: dict[str, Any]) -> str:
    who = _who(data)
    return f"{_clock(data)} {who + '  ' if who else ''}{describe(kind, data)}"


# ---------------------------------------------------------------------- token coalescing


class TokenLines:
    """Gathers `agent.output` tokens of one job into whole lines."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._job: Any = None
        self._prefix = ""
        self._text = ""
        self.last_add = 0.0

    def add(self, data: dict[str, Any]) -> None:
        job = data.get("execution_id")
        if job != self._job:
            self.flush()
            self._job = job
        self._prefix = f"{_clock(data)} {_who(data)}  {cell(data.get('stage'), 20)} │ "
        self._text += clean(data.get("text")).replace("\t", "    ")
        self.last_add = time.monotonic()
        *done, self._text = self._text.split("\n")
        for line in done:
            self._write(line)
        while len(self._text) > LINE_WIDTH:
            self._write(self._text[:LINE_WIDTH])
            self._text = self._text[LINE_WIDTH:]

    def flush(self) -> None:
        if self._text.strip():
            self._write(self._text)
        self._text = ""

    def _write(self, line: str) -> None:
        if line.strip():
            self._emit(self._prefix + line.rstrip())


# ---------------------------------------------------------------------- following


@dataclass
class _Gone:
    error: CliError | None  # None: the server closed the stream


class _Open:
    """The server accepted the stream."""


def _reader(
    client: HubClient,
    last_id: str | None,
    params: dict[str, str | int | None],
    out: queue.Queue[SseEvent | _Gone | _Open],
) -> None:
    try:
        for ev in client.events(last_id, params, on_open=lambda: out.put(_Open())):
            out.put(ev)
        out.put(_Gone(None))
    except CliError as exc:
        out.put(_Gone(exc))


def watch(args: argparse.Namespace, client: HubClient) -> int:
    if not args.plain and args.task is None and sys.stdin.isatty() and sys.stdout.isatty():
        from wf_cli.commands.watch_live import run_live

        try:
            return run_live(client, args.project)
        except KeyboardInterrupt:
            return 0
    return follow(args, client)


def follow(args: argparse.Namespace, client: HubClient) -> int:
    def emit(line: str) -> None:
        print(line, flush=True)

    tokens = TokenLines(emit)
    last_id: str | None = None
    connected_once = False
    failures = 0
    print(f"following {client.base_url}/api/events (Ctrl-C to stop)", flush=True)
    try:
        while True:
            q: queue.Queue[SseEvent | _Gone | _Open] = queue.Queue()
            # The server filters too; --replay only matters for the first connection.
            params = {"project": args.project, "task": args.task, "replay": None if last_id else args.replay}
            threading.Thread(target=_reader, args=(client, last_id, params, q), daemon=True).start()
            while True:
                try:
                    item = q.get(timeout=IDLE_FLUSH_SECONDS)
                except queue.Empty:
                    tokens.flush()
                    continue
                if isinstance(item, _Gone):
                    break
                if isinstance(item, _Open):
                    connected_once, failures = True, 0
                    continue
                last_id = item.id or last_id
                _handle(item, args.project, args.task, tokens, emit)
            tokens.flush()
            err = item.error
            # Fail at once when the first connection fails or the request itself is wrong (4xx);
            # after that, a hub that restarts or is briefly unavailable is waited for.
            if err is not None and (not connected_once or (isinstance(err, ApiError) and err.status < 500)):
                raise err
            delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
            failures += 1
            reason = err.message if err else "the server closed the stream"
            emit(f"-- {shorten(clean(reason, oneline=True), 200)}; reconnecting in {delay:g}s")
            time.sleep(delay)
    except KeyboardInterrupt:
        tokens.flush()
        return 0


def _handle(
    ev: SseEvent, project: str | None, task: str | None, tokens: TokenLines, emit: Callable[[str], None]
) -> None:
    try:
        data = json.loads(ev.data)
    except json.JSONDecodeError:
        data = {"text": ev.data}
    if not isinstance(data, dict):
        data = {"value": data}
    kind = str(data.get("type") or ev.event)
    if project and data.get("project") not in (project, None):
        return
    if project and data.get("project") is None and kind not in ("control.changed", "stream.gap"):
        return
    if task and data.get("task_key") not in (task, None):
        return
    if kind == "agent.output" and data.get("kind") == "token":
        tokens.add(data)
        return
    tokens.flush()
    emit(format_line(kind, data))
