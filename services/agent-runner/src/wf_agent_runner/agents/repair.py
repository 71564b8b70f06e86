"""Reading what a model plausibly meant: the PM breakdown as weak models write it.

Small models wrap the JSON in fences or prose, prefix `<think>` blocks, return the task list bare or
under another key, write `acceptance_criteria` as one string, `priority` as "7" or "high",
`depends_on` as "none" or a single number, and add keys of their own. A priority outside 1-10 is
not guessed at: it goes back to the model. `read_breakdown` normalises
all of that and validates the result with the published `Breakdown` model; what still does not
validate (no tasks at all, a dependency cycle, ...) raises, and the PM retries with the error.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError
from wf_common.jobs import Breakdown

from wf_agent_runner.llm.toolcalls import json_candidates, strip_think

_KEYS = {
    "title": ("title", "name", "task", "summary", "task_title"),
    "description": ("description", "desc", "details", "detail", "body", "task_description"),
    "acceptance_criteria": (
        "acceptance_criteria",
        "acceptancecriteria",
        "acceptance criteria",
        "acceptance-criteria",
        "criteria",
        "acceptance",
    ),
    "priority": ("priority", "prio", "importance"),
    "depends_on": ("depends_on", "dependson", "depends on", "dependencies", "depends", "deps"),
}
_WORD_PRIORITY = {
    "critical": 10,
    "urgent": 9,
    "highest": 9,
    "high": 8,
    "medium": 5,
    "normal": 5,
    "low": 2,
    "lowest": 1,
}
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_LIST_KEYS = ("tasks", "breakdown", "task_breakdown", "items", "subtasks", "plan")


class BreakdownUnreadable(ValueError):
    """No JSON task list could be found in the reply at all."""


def _norm_key(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _field(task: dict[str, Any], name: str) -> Any:
    wanted = {_norm_key(k) for k in _KEYS[name]} | {k.replace("_", " ") for k in _KEYS[name]}
    for key, value in task.items():
        nk = _norm_key(str(key))
        if nk in wanted or nk.replace("_", "") in wanted or nk.replace(" ", "_") in wanted:
            return value
    return None


def _criteria(value: Any, notes: list[str], i: int) -> Any:
    if isinstance(value, str):
        lines = [_BULLET.sub("", ln).strip() for ln in value.splitlines()]
        items = [ln for ln in lines if ln]
        notes.append(f"tasks[{i}].acceptance_criteria was a string; read it as {len(items)} criteria")
        return items
    if isinstance(value, list):
        return [
            c if isinstance(c, str) else json.dumps(c)
            for c in value
            if not (isinstance(c, str) and not c.strip())
        ]
    return value


def _priority(value: Any, notes: list[str], i: int) -> Any:
    original = value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _WORD_PRIORITY:
            value = _WORD_PRIORITY[text]
        else:
            m = re.fullmatch(r"p?(\d+)(?:\s*/\s*10)?", text)
            value = int(m.group(1)) if m else value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value != original:
        notes.append(f"tasks[{i}].priority {original!r} read as {value}")
    return value


def _depends(value: Any, titles: list[str]) -> Any:
    if value is None or (
        isinstance(value, str) and value.strip().lower() in ("", "none", "null", "n/a", "-")
    ):
        return []
    if isinstance(value, int | str):
        value = [value]
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for d in value:
        if isinstance(d, str) and d.strip().isdigit():
            out.append(int(d.strip()))
        elif isinstance(d, str) and d.strip() in titles:  # by title: its index
            out.append(titles.index(d.strip()))
        else:
            out.append(d)
    return out


def _task_list(value: Any) -> list[Any] | None:
    if isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
        return value
    if isinstance(value, dict):
        for key in _LIST_KEYS:
            inner = value.get(key)
            if isinstance(inner, dict):
                inner = _task_list(inner)
            if isinstance(inner, list):
                return inner
        if _field(value, "title") is not None:  # one task on its own
            return [value]
    return None


def normalise_breakdown(text: str) -> tuple[dict[str, Any], list[str]]:
    """The reply as a {"tasks": [...]} document in the schema's shape, and notes on what was fixed."""
    notes: list[str] = []
    candidates = json_candidates(text)
    tasks = next((found for c in candidates if (found := _task_list(c)) is not None), None)
    if tasks is None:
        shown = strip_think(text)[:200]
        raise BreakdownUnreadable(f"no JSON object with a task list was found in the answer: {shown!r}")
    if strip_think(text).lstrip()[:1] not in "{[" or len(candidates) > 1:
        notes.append("took the JSON out of surrounding text")
    titles = [str(_field(t, "title") or "").strip() for t in tasks]
    out = []
    for i, t in enumerate(tasks):
        title = _field(t, "title")
        description = _field(t, "description")
        task: dict[str, Any] = {
            "title": title.strip() if isinstance(title, str) else title,
            "description": description if description not in (None, "") else title,
            "acceptance_criteria": _criteria(_field(t, "acceptance_criteria"), notes, i),
            "priority": _priority(
                _field(t, "priority") if _field(t, "priority") is not None else 5, notes, i
            ),
            "depends_on": _depends(_field(t, "depends_on"), titles),
        }
        if task["acceptance_criteria"] is None:
            task.pop("acceptance_criteria")  # missing: let validation say so
        out.append(task)
    _fix_dependency_numbers(out, notes)
    return {"tasks": out}, notes


def _fix_dependency_numbers(tasks: list[dict[str, Any]], notes: list[str]) -> None:
    """Small models number tasks from 1 ("depends_on": [1] for the first) or list a task as its own
    dependency (seen from Qwen2.5-Coder-0.5B on every try). Numbers that only make sense from 1 are
    shifted; a task's dependency on itself is dropped (it can only mean "none"), and so is one on a
    number no task has (Qwen2.5-Coder-0.5B: one task with "depends_on": [2])."""
    deps = [t["depends_on"] for t in tasks if isinstance(t.get("depends_on"), list)]
    numbers = [d for ds in deps for d in ds if isinstance(d, int)]
    n = len(tasks)
    one_based = (
        bool(numbers)
        and min(numbers) >= 1
        and (
            max(numbers) == n
            or any(i in ds for i, t in enumerate(tasks) if isinstance(ds := t.get("depends_on"), list))
        )
    )
    for i, t in enumerate(tasks):
        ds = t.get("depends_on")
        if not isinstance(ds, list):
            continue
        if one_based:
            ds = [d - 1 if isinstance(d, int) else d for d in ds]
        if i in ds:
            notes.append(f"tasks[{i}].depends_on named the task itself: dropped")
            ds = [d for d in ds if d != i]
        if dangling := [d for d in ds if isinstance(d, int) and not 0 <= d < n]:
            # A number that names no task of this breakdown cannot order anything: no dependency.
            notes.append(f"tasks[{i}].depends_on named no task of the breakdown ({dangling}): dropped")
            ds = [d for d in ds if d not in dangling]
        t["depends_on"] = ds
    if one_based:
        notes.append("read depends_on as task numbers counted from 1")


def read_breakdown(text: str) -> tuple[Breakdown, list[str]]:
    """The breakdown a reply means, and notes on the repairs made. Raises `ValidationError` or
    `BreakdownUnreadable` (a ValueError) when its meaning is really unclear."""
    try:  # the exact answer first: a well-behaved model needs no repair
        return Breakdown.model_validate_json(text), []
    except ValidationError:
        pass
    doc, notes = normalise_breakdown(text)
    return Breakdown.model_validate(doc), notes
