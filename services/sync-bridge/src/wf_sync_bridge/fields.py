"""The mapped fields of a task and how they travel in a tracker item: title as the title, stage as the
column/status, and description, acceptance criteria, priority and blocked_by in one markdown body:

    <description>

    ## Acceptance criteria

    - first
    - second

    Priority: 5
    Blocked by: T-001, T-003

A human editing any of those lines there edits the task here. Markdown is the source of truth; the
Jira and Asana connectors convert it (markup.py).
"""

from __future__ import annotations

import re
from typing import Any

from wf_common.events import TaskSnapshot

FIELDS = ("title", "description", "acceptance_criteria", "priority", "blocked_by", "stage")
BODY_FIELDS = ("description", "acceptance_criteria", "priority", "blocked_by")
CRITERIA_HEADING = "## Acceptance criteria"
_MARKER = re.compile(r"\n*<!-- wf-sync:([a-z0-9-]+/[A-Z]+-[0-9]+) -->\s*$")
_PRIORITY = re.compile(r"^Priority:\s*(\d+)\s*$", re.IGNORECASE)
_BLOCKED = re.compile(r"^Blocked by:\s*(.*)$", re.IGNORECASE)
_KEY = re.compile(r"^[A-Z]+-[0-9]+$")


def local_fields(task: TaskSnapshot) -> dict[str, Any]:
    return {
        "title": task.title,
        "description": task.description.strip(),
        "acceptance_criteria": [c.strip() for c in task.acceptance_criteria if c.strip()],
        "priority": task.priority,
        "blocked_by": sorted(set(task.blocked_by)),
        "stage": task.stage,
    }


def marker_of(project: str, key: str) -> str:
    return f"{project}/{key}"


def hidden_marker(marker: str) -> str:
    return f"<!-- wf-sync:{marker} -->"


def render_body(fields: dict[str, Any], marker: str | None = None) -> str:
    parts = []
    if fields.get("description"):
        parts.append(str(fields["description"]).strip())
    criteria = fields.get("acceptance_criteria") or []
    if criteria:
        parts.append(CRITERIA_HEADING + "\n\n" + "\n".join(f"- {c}" for c in criteria))
    meta = [f"Priority: {fields.get('priority', 5)}"]
    if fields.get("blocked_by"):
        meta.append("Blocked by: " + ", ".join(sorted(fields["blocked_by"])))
    parts.append("\n".join(meta))
    body = "\n\n".join(parts)
    return body + ("\n\n" + hidden_marker(marker) if marker else "")


def split_marker(body: str) -> tuple[str, str | None]:
    m = _MARKER.search(body)
    return (body[: m.start()], m.group(1)) if m else (body, None)


def parse_body(body: str) -> dict[str, Any]:
    """The body fields from a (possibly hand-edited) body. Lines it does not recognise stay in the
    description; a missing priority line means "unchanged" and is left out."""
    text, _ = split_marker(body.replace("\r\n", "\n"))
    lines = text.strip("\n").split("\n")
    out: dict[str, Any] = {"blocked_by": []}
    # Trailing metadata lines.
    while lines and (
        not lines[-1].strip() or _PRIORITY.match(lines[-1].strip()) or _BLOCKED.match(lines[-1].strip())
    ):
        line = lines.pop().strip()
        if (m := _PRIORITY.match(line)) is not None:
            out["priority"] = min(10, max(1, int(m.group(1))))
        elif (m := _BLOCKED.match(line)) is not None:
            keys = [k.strip().upper() for k in m.group(1).split(",") if k.strip()]
            out["blocked_by"] = sorted({k for k in keys if _KEY.match(k)})
    criteria: list[str] = []
    heading = next((i for i, ln in enumerate(lines) if ln.strip().lower() == CRITERIA_HEADING.lower()), None)
    if heading is not None:
        rest = lines[heading + 1 :]
        tail = []
        for ln in rest:
            s = ln.strip()
            if s.startswith(("- ", "* ")):
                criteria.append(s[2:].strip())
            elif (s and criteria) or s:
                tail.append(ln)
        lines = lines[:heading] + tail
    out["acceptance_criteria"] = [c for c in criteria if c]
    out["description"] = "\n".join(lines).strip()
    return out
