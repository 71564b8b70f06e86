"""Pause scopes in the `wf_control` KV bucket, read and written the same way by every service.

| key | pauses |
|---|---|
| `paused` | everything (the global flag) |
| `paused.project.<slug>` | one project |
| `paused.task.<slug>.<KEY>` | one task |

A value `true` pauses; `false` or a deleted key does not. A pause stops dispatch in its scope and
freezes running jobs there before their next model turn (and their sandbox); resume continues them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from wf_common.subjects import PAUSED_KEY

T = TypeVar("T")
Scope = Literal["global", "project", "task"]
PROJECT_PREFIX = f"{PAUSED_KEY}.project."
TASK_PREFIX = f"{PAUSED_KEY}.task."


def pause_key(project: str | None = None, task_key: str | None = None) -> str:
    if task_key is not None:
        return f"{TASK_PREFIX}{project}.{task_key}"
    if project is not None:
        return f"{PROJECT_PREFIX}{project}"
    return PAUSED_KEY


def scope_of(project: str | None, task_key: str | None) -> Scope:
    return "task" if task_key is not None else "project" if project is not None else "global"


def parse_flag(value: bytes | None) -> bool:
    return (value or b"").strip().lower() in (b"true", b"1", b"yes", b"on")


@dataclass
class PauseState:
    paused: bool = False  # the global flag
    projects: set[str] = field(default_factory=set)
    tasks: set[tuple[str, str]] = field(default_factory=set)

    def apply(self, key: str, value: bytes | None, operation: str | None = None) -> bool:
        """Apply one KV entry; True when it changed anything."""
        on = False if operation in (KV_DEL, KV_PURGE) else parse_flag(value)
        if key == PAUSED_KEY:
            was, self.paused = self.paused, on
            return was != on
        if key.startswith(PROJECT_PREFIX):
            return _toggle(self.projects, key.removeprefix(PROJECT_PREFIX), on)
        if key.startswith(TASK_PREFIX):
            project, _, task = key.removeprefix(TASK_PREFIX).partition(".")
            if project and task:
                return _toggle(self.tasks, (project, task), on)
        return False

    def scope_for(self, project: str, task_key: str) -> Scope | None:
        """The pause in effect for a task (the widest one), or None."""
        if self.paused:
            return "global"
        if project in self.projects:
            return "project"
        if (project, task_key) in self.tasks:
            return "task"
        return None

    def as_dict(self) -> dict[str, object]:
        return {
            "paused": self.paused,
            "projects": sorted(self.projects),
            "tasks": [{"project": p, "key": k} for p, k in sorted(self.tasks)],
        }


def _toggle(values: set[T], item: T, on: bool) -> bool:
    if on == (item in values):
        return False
    if on:
        values.add(item)
    else:
        values.discard(item)
    return True


async def read_state(kv: KeyValue) -> PauseState:
    state = PauseState()
    try:
        keys = await kv.keys()
    except NoKeysError:
        return state
    for key in keys:
        if key == PAUSED_KEY or key.startswith((PROJECT_PREFIX, TASK_PREFIX)):
            with contextlib.suppress(KeyNotFoundError):
                entry = await kv.get(key)
                state.apply(key, entry.value, entry.operation)
    return state
