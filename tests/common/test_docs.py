"""docs/architecture.md names exactly the events and commands that exist (it once named an event type
that did not)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel
from wf_common import events
from wf_common.commands import COMMAND_TYPES

ARCHITECTURE = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")


def section(start: str, end: str) -> str:
    return ARCHITECTURE[ARCHITECTURE.index(start) : ARCHITECTURE.index(end)]


def test_the_events_listed_are_the_event_types() -> None:
    events_text = section("- Events (`wf_common.events`", "- Commands (")
    listed = set(re.findall(r"`([a-z_]+\.[a-z_.]+)`", events_text))
    types = {
        cls.model_fields["type"].default
        for cls in vars(events).values()
        if isinstance(cls, type) and issubclass(cls, BaseModel) and "type" in cls.model_fields
    }
    assert listed - {"wf_common.events"} == {t for t in types if isinstance(t, str)}


def test_the_command_subjects_listed_are_the_command_types() -> None:
    row = next(line for line in ARCHITECTURE.splitlines() if line.startswith("| `wf.cmd.<login>.<type>`"))
    listed = set(re.findall(r"`(?:wf\.cmd\.)?([a-z_]+)`", row.split("Types:", 1)[1]))
    assert set(COMMAND_TYPES) <= listed
