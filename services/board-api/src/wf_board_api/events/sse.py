"""The Server-Sent Events wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html)."""

from __future__ import annotations

import re

# Only these end a line in SSE; str.splitlines() would also split at U+2028 and friends, which JSON
# leaves raw inside strings, and so change the data.
_NEWLINE = re.compile(r"\r\n|\r|\n")


def message(data: bytes | str, *, event: str | None = None, id: int | None = None) -> bytes:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event:
        lines.append(f"event: {event}")
    # A newline inside data would end the field; the spec's way is one data: line per line, which the
    # browser joins back with \n.
    lines.extend(f"data: {line}" for line in _NEWLINE.split(text))
    return ("\n".join(lines) + "\n\n").encode()


def comment(text: str) -> bytes:
    """A line browsers ignore: keeps proxies from closing an idle stream, and tells clients we're ready."""
    return f": {text}\n\n".encode()


def retry(milliseconds: int) -> bytes:
    """How long the browser waits before reconnecting."""
    return f"retry: {milliseconds}\n\n".encode()
