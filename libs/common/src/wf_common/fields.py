"""The text rules (wf_common.text, keys, workspaces) as pydantic types, for the command models and the
board API's request schemas alike: one definition, so the OpenAPI schema declares exactly what the
orchestrator will accept.

    text (no NUL):        IdeaText, LongText, FeedbackText, Note, Reason, Criterion
    a line (no controls): ProjectName, TestCommand, Title, Actor
    shapes:               Slug, TaskKey, BugKey, Workspace

Lone surrogates never pass: pydantic refuses them as "not a valid unicode string" before any rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from wf_common.keys import BUG_KEY, SLUG, TASK_KEY
from wf_common.text import (
    ACTOR_MAX,
    COMMAND_MAX,
    ITEM_MAX,
    LINE_PATTERN,
    NAME_MAX,
    NOTE_MAX,
    TEXT_MAX,
    TEXT_PATTERN,
    TITLE_MAX,
)
from wf_common.workspaces import PATH_MAX, WORKSPACE_PATTERN, workspace_problem

_PATTERN_WORDS: dict[str, str] = {
    TEXT_PATTERN: "must not contain a NUL character",
    LINE_PATTERN: "must be one line, without control characters (tabs, newlines, escapes)",
}


class _Shape:
    """Checks a value against `pattern` (case-insensitively when `capitals`, then upper-cases it), saying
    what was expected in words; the JSON Schema declares the very pattern that is checked."""

    def __init__(self, pattern: re.Pattern[str], what: str, example: str, *, capitals: bool) -> None:
        source = pattern.pattern
        if capitals:  # ^T-… accepts t-… too
            source = re.sub(r"\^([A-Z])", lambda m: f"^[{m.group(1)}{m.group(1).lower()}]", source)
        self.pattern = source
        self._regex = re.compile(source)
        self._what, self._example, self._capitals = what, example, capitals

    def __call__(self, v: str) -> str:
        if not self._regex.fullmatch(v):
            raise ValueError(f"{v!r} is not a valid {self._what}; expected something like {self._example!r}")
        return v.upper() if self._capitals else v

    def field(self) -> Any:
        return Field(
            json_schema_extra={"pattern": self.pattern},
            description=f"{self._what}, e.g. {self._example}",
            examples=[self._example],
        )


_SLUG = _Shape(SLUG, "project slug (lowercase letters, digits and -)", "listsnap", capitals=False)
_TASK_KEY = _Shape(TASK_KEY, "task key", "T-001", capitals=True)
_BUG_KEY = _Shape(BUG_KEY, "bug key", "B-001", capitals=True)
_EVENT_ID = _Shape(
    re.compile(r"^[0-9]{1,18}$"), "event id (the number of an event sent)", "42", capitals=False
)


def _workspace(v: str) -> str:
    wrong = workspace_problem(v)
    if wrong:
        raise ValueError(wrong)
    return v


Slug = Annotated[str, StringConstraints(max_length=40), AfterValidator(_SLUG), _SLUG.field()]
TaskKey = Annotated[str, StringConstraints(max_length=11), AfterValidator(_TASK_KEY), _TASK_KEY.field()]
BugKey = Annotated[str, StringConstraints(max_length=11), AfterValidator(_BUG_KEY), _BUG_KEY.field()]
EventId = Annotated[str, StringConstraints(max_length=18), AfterValidator(_EVENT_ID), _EVENT_ID.field()]
Actor = Annotated[str, StringConstraints(pattern=LINE_PATTERN, min_length=1, max_length=ACTOR_MAX)]
ProjectName = Annotated[str, StringConstraints(pattern=LINE_PATTERN, min_length=1, max_length=NAME_MAX)]
TestCommand = Annotated[str, StringConstraints(pattern=LINE_PATTERN, min_length=1, max_length=COMMAND_MAX)]
Title = Annotated[str, StringConstraints(pattern=LINE_PATTERN, min_length=3, max_length=TITLE_MAX)]
IdeaText = Annotated[str, StringConstraints(pattern=TEXT_PATTERN, min_length=3, max_length=TEXT_MAX)]
LongText = Annotated[str, StringConstraints(pattern=TEXT_PATTERN, max_length=TEXT_MAX)]
FeedbackText = Annotated[str, StringConstraints(pattern=TEXT_PATTERN, min_length=1, max_length=TEXT_MAX)]
Note = Annotated[str, StringConstraints(pattern=TEXT_PATTERN, max_length=NOTE_MAX)]
Reason = Annotated[str, StringConstraints(pattern=TEXT_PATTERN, min_length=1, max_length=NOTE_MAX)]
# A stage named in a command (rollback, move_task): the shape of config's stage names; the orchestrator
# checks it against the project's pipeline.
StageName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=20)]
# A repository-relative file named by a diff comment.
RepoPath = Annotated[str, StringConstraints(pattern=LINE_PATTERN, min_length=1, max_length=500)]
Criterion = Annotated[str, StringConstraints(pattern=TEXT_PATTERN, min_length=1, max_length=ITEM_MAX)]
# The pattern has look-aheads (not in pydantic's regex engine), so the check runs in Python and the
# pattern is declared for the schema: the same rule, stated once in wf_common.workspaces.
Workspace = Annotated[
    str,
    StringConstraints(min_length=1, max_length=PATH_MAX),
    AfterValidator(_workspace),
    Field(
        json_schema_extra={"pattern": WORKSPACE_PATTERN},
        description=(
            "absolute path of the project's directory (created with a git repository if missing); not /, "
            "not a system directory, not your home directory itself, not another project's workspace"
        ),
        examples=["/home/me/projects/listsnap"],
    ),
]


def error_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message, with the text rules' patterns said in words."""
    pattern = (error.get("ctx") or {}).get("pattern")
    if error.get("type") == "string_pattern_mismatch" and pattern in _PATTERN_WORDS:
        return _PATTERN_WORDS[pattern]
    if error.get("type") == "string_unicode":
        return "must be valid Unicode text (it contains a lone surrogate)"
    return str(error.get("msg", "invalid value"))
