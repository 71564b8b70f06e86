"""The live terminal board of `wf watch` (rich Live): the columns with their cards, what each agent is
doing, and the output tail of the selected task, updated in place from the event stream.

Keys: ←/→ or h/l and ↑/↓ or k/j select a card; p pause/resume everything; a approve the selected
card; r reject it (asks for a reason); f send feedback (asks for the text); q quit. The state model
(`LiveBoard`) is pure: events go in, a renderable comes out; the loop only wires it to the terminal.
Everything shown is model or user text, and rich's markup is never applied to it (Text objects).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import sys
import termios
import threading
import tty
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from wf_cli.client import HubClient, SseEvent
from wf_cli.commands.common import task_path
from wf_cli.errors import CliError
from wf_cli.text import clean

LOG_LINES = 12
NEEDS_HUMAN, FAILED = "needs-human", "failed"


def activity_of(kind: str, data: dict[str, Any]) -> str | None:
    match kind:
        case "execution.started" | "execution.resumed":
            return "thinking"
        case "execution.waiting":
            return "waiting for the model server"
        case "execution.paused":
            return "paused"
        case "approval.requested":
            return "waiting for approval"
        case "agent.output":
            return "running a command" if data.get("kind") == "command_output" else "thinking"
        case "execution.finished":
            return ""
    return None


@dataclass
class LiveBoard:
    stages: list[str]
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    activity: dict[str, str] = field(default_factory=dict)
    logs: dict[str, deque[str]] = field(default_factory=dict)
    paused: bool = False
    selected: str | None = None
    status: str = ""

    @property
    def columns(self) -> list[str]:
        return [*self.stages, NEEDS_HUMAN, FAILED]

    @staticmethod
    def column_of(task: dict[str, Any]) -> str:
        state = task.get("state")
        if state == "needs_human":
            return NEEDS_HUMAN
        if state == "failed":
            return FAILED
        return str(task.get("stage"))

    def load(self, board: dict[str, Any]) -> None:
        self.paused = bool(board.get("paused"))
        for tasks in (board.get("columns") or {}).values():
            for task in tasks:
                self.tasks[task["key"]] = task
        if self.selected is None and self.tasks:
            self.selected = next(iter(self.tasks))

    def apply(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "control.changed":
            self.paused = bool(data.get("paused"))
            return
        task = data.get("task")
        if isinstance(task, dict) and task.get("key"):
            self.tasks[task["key"]] = task
            if self.selected is None:
                self.selected = task["key"]
        key = data.get("task_key") or (task or {}).get("key")
        if not key:
            return
        activity = activity_of(kind, data)
        if activity is not None:
            self.activity[key] = activity
        if kind == "agent.output":
            lines = self.logs.setdefault(key, deque(maxlen=LOG_LINES * 20))
            for line in clean(str(data.get("text") or "")).splitlines() or [""]:
                if line.strip():
                    lines.append(f"{data.get('stage', '')} {data.get('kind', '')}: {line}")

    # -------------------------------------------------------------- selection

    def _grid(self) -> list[list[str]]:
        visible = [t for t in self.tasks.values() if t.get("state") != "cancelled"]
        return [[t["key"] for t in visible if self.column_of(t) == c] for c in self.columns]

    def move(self, dx: int, dy: int) -> None:
        grid = self._grid()
        if not any(grid):
            return
        col = next((i for i, keys in enumerate(grid) if self.selected in keys), 0)
        row = grid[col].index(self.selected) if self.selected in grid[col] else 0
        if dx:
            col = (col + dx) % len(grid)
            while not grid[col]:
                col = (col + (dx or 1)) % len(grid)
            row = min(row, len(grid[col]) - 1)
        if dy and grid[col]:
            row = (row + dy) % len(grid[col])
        self.selected = grid[col][row]

    # -------------------------------------------------------------- rendering

    def render(self) -> RenderableType:
        table = Table(expand=True, show_lines=False, pad_edge=False)
        grid = self._grid()
        shown = [(c, keys) for c, keys in zip(self.columns, grid, strict=True) if keys or c in self.stages]
        for column, _ in shown:
            table.add_column(Text(column), overflow="fold", ratio=1)
        height = max((len(keys) for _, keys in shown), default=0)
        for i in range(height):
            cells: list[RenderableType] = []
            for _, keys in shown:
                cells.append(self._card(keys[i]) if i < len(keys) else Text(""))
            table.add_row(*cells)
        head = Text("PAUSED" if self.paused else "running", style="bold yellow" if self.paused else "green")
        head.append("   keys: arrows select · p pause/resume · a approve · r reject · f feedback · q quit")
        log = Text()
        if self.selected:
            for line in list(self.logs.get(self.selected, ()))[-LOG_LINES:]:
                log.append(line + "\n")
        title = Text(f"output of {self.selected}" if self.selected else "output")
        parts: list[RenderableType] = [head, table, Panel(log, title=title, height=LOG_LINES + 2)]
        if self.status:
            parts.append(Text(self.status))
        return Group(*parts)

    def _card(self, key: str) -> Text:
        task = self.tasks[key]
        mark = "▶ " if key == self.selected else "  "
        text = Text(mark + key + " ", style="bold reverse" if key == self.selected else "bold")
        text.append(str(task.get("title", "")))
        text.append(f"\n  P{task.get('priority', '')} {str(task.get('state', '')).replace('_', ' ')}")
        activity = self.activity.get(key)
        if activity and task.get("state") == "running":
            text.append(f" · {activity}", style="cyan")
        return text


# ------------------------------------------------------------------ terminal loop


@contextlib.contextmanager
def _raw(stream: Any) -> Iterator[None]:
    fd = stream.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _read_key(timeout: float) -> str | None:
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        return None
    ch = os.read(sys.stdin.fileno(), 1).decode(errors="replace")
    if ch == "\x1b":
        seq = os.read(sys.stdin.fileno(), 2).decode(errors="replace")
        return {"[A": "up", "[B": "down", "[C": "right", "[D": "left"}.get(seq)
    return ch


def _follow(client: HubClient, params: dict[str, Any], out: queue.Queue[SseEvent | CliError]) -> None:
    last: str | None = None
    while True:
        try:
            for ev in client.events(last, params):
                last = ev.id or last
                out.put(ev)
        except CliError as err:
            out.put(err)
            return


def run_live(client: HubClient, project: str | None) -> int:
    board_data = client.get("/api/board", {"project": project})
    board = LiveBoard(stages=list(board_data.get("stages") or []))
    board.load(board_data)
    events: queue.Queue[SseEvent | CliError] = queue.Queue()
    threading.Thread(target=_follow, args=(client, {"project": project}, events), daemon=True).start()
    console = Console()
    with _raw(sys.stdin), Live(board.render(), console=console, auto_refresh=False, screen=True) as live:
        while True:
            changed = False
            while not events.empty():
                item = events.get_nowait()
                if isinstance(item, CliError):
                    board.status = f"event stream lost: {item.message}"
                else:
                    with contextlib.suppress(json.JSONDecodeError):
                        data = json.loads(item.data)
                        if isinstance(data, dict):
                            board.apply(str(data.get("type") or item.event), data)
                changed = True
            key = _read_key(0.1)
            if key == "q":
                return 0
            if key is not None:
                changed = True
                _on_key(key, board, client, live)
            if changed:
                live.update(board.render(), refresh=True)


def _ask(live: Live, prompt: str) -> str:
    live.stop()
    try:
        sys.stdout.write(prompt)
        sys.stdout.flush()
        line = ""
        while True:
            ch = os.read(sys.stdin.fileno(), 1).decode(errors="replace")
            if ch in ("\n", "\r"):
                break
            if ch == "\x7f":
                line = line[:-1]
            else:
                line += ch
            sys.stdout.write(ch if ch != "\x7f" else "\b \b")
            sys.stdout.flush()
        return line.strip()
    finally:
        live.start(refresh=True)


def _on_key(key: str, board: LiveBoard, client: HubClient, live: Live) -> None:
    moves = {"left": (-1, 0), "h": (-1, 0), "right": (1, 0), "l": (1, 0), "up": (0, -1), "k": (0, -1),
             "down": (0, 1), "j": (0, 1)}  # fmt: skip
    if key in moves:
        board.move(*moves[key])
        return
    task = board.tasks.get(board.selected or "")
    try:
        if key == "p":
            client.post("/api/control/resume" if board.paused else "/api/control/pause")
            board.status = "resumed" if board.paused else "paused"
        elif key == "a" and task:
            client.post(task_path(task["project"], task["key"], "approve"))
            board.status = f"approved {task['key']}"
        elif key == "r" and task:
            reason = _ask(live, f"reject {task['key']}, reason: ")
            if reason:
                client.post(task_path(task["project"], task["key"], "reject"), {"reason": reason})
                board.status = f"rejected {task['key']}"
        elif key == "f" and task:
            text = _ask(live, f"feedback for {task['key']}: ")
            if text:
                client.post(task_path(task["project"], task["key"], "feedback"), {"text": text})
                board.status = f"feedback sent to {task['key']}"
    except CliError as err:
        board.status = f"refused: {err.message}"
