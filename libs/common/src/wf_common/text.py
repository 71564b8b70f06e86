"""The rules every text entering the system follows, wherever it enters (HTTP, NATS, the `wf` command).

- No NUL (PostgreSQL cannot store it, C strings end at it) and no lone surrogates (not Unicode; they
  cannot be encoded as UTF-8, so they fail when written to NATS, a log or the database).
- A *line* (a name, a title, an actor, a path, a command) has no control characters at all.
- Every field has a maximum length (the `*_MAX` constants), counted in characters.

The rules are plain regular expressions with no other imports, so the `wf` command can check its
arguments without loading pydantic; `wf_common.fields` turns them into pydantic types, whose JSON
Schema (the board API's OpenAPI) carries the same patterns and lengths.

Lone surrogates are outside what JSON Schema calls a string, and pydantic refuses them before any
pattern runs ("unable to parse raw data as a unicode string"); `problem()` checks them for text that
does not pass through pydantic (command-line arguments decoded with surrogateescape).
"""

from __future__ import annotations

import re

# Multi-line text: anything but NUL. Written with \x escapes so the pattern reads the same in JSON Schema.
TEXT_PATTERN = r"^[^\x00]*$"
# One line: no C0 control characters (tab, newline and NUL included), no DEL.
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"

_TEXT = re.compile(TEXT_PATTERN)
_LINE = re.compile(LINE_PATTERN)
_SURROGATE = re.compile("[\ud800-\udfff]")

ACTOR_MAX = 100
NAME_MAX = 200
TITLE_MAX = 200
PATH_MAX = 4096
COMMAND_MAX = 1000
NOTE_MAX = 5000
TEXT_MAX = 20_000
ITEM_MAX = 1000
ITEMS_MAX = 100


def problem(value: str, *, line: bool = False, max_length: int | None = None) -> str | None:
    """What is wrong with `value` under the rules, in words, or None when nothing is."""
    if _SURROGATE.search(value):
        return "contains a lone surrogate (text that is not valid Unicode)"
    if "\x00" in value:
        return "contains a NUL character"
    if line and not _LINE.match(value):
        return "contains a control character (a line may not hold tabs, newlines or escapes)"
    if max_length is not None and len(value) > max_length:
        return f"is {len(value)} characters long; at most {max_length} are allowed"
    return None


def is_text(value: str) -> bool:
    return _TEXT.match(value) is not None and not _SURROGATE.search(value)


def is_line(value: str) -> bool:
    return _LINE.match(value) is not None and not _SURROGATE.search(value)
