"""Terminal output: untrusted text made safe to print, and aligned tables.

Task titles, summaries, agent output and error messages can come from a model. Printed raw, an escape
sequence in them could rewrite the screen, set the window title, hide text or (on some terminals)
write to the clipboard, so everything from the API goes through `clean()` before it is printed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_ESCAPES = re.compile(
    r"""
      \x1b\[[0-?]*[\x20-/]*[@-~]?          # CSI: colours, cursor moves, erase
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?    # OSC: window title, hyperlinks, clipboard
    | \x1b[PX^_][^\x1b]*(?:\x1b\\)?        # DCS, SOS, PM, APC strings
    | \x1b[\x20-/]*[0-~]?                  # other two-byte escapes (and a lone ESC)
    | \x9b[0-?]*[\x20-/]*[@-~]?            # 8-bit CSI
    """,
    re.VERBOSE,
)
# C0 controls but tab and newline, DEL, C1 controls, and the bidi overrides that reorder what is shown.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_WHITESPACE = re.compile(r"\s*[\t\n]\s*")


def clean(text: object, *, oneline: bool = False) -> str:
    """`text` without escape sequences and control characters; `oneline` also folds tabs/newlines."""
    s = "" if text is None else str(text)
    s = _CONTROLS.sub("", _ESCAPES.sub("", s.replace("\r\n", "\n")))
    if oneline:
        s = _WHITESPACE.sub(" ", s).strip()
    return s


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def cell(value: object, width: int = 60) -> str:
    """One table cell: cleaned, on one line, at most `width` characters."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return shorten(clean(value, oneline=True), width)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "") -> str:
    """Columns padded to the widest cell; the last column is not padded (no trailing spaces)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))

    def line(values: Sequence[str]) -> str:
        padded = [v.ljust(widths[i]) for i, v in enumerate(values[:-1])]
        return (indent + "  ".join([*padded, values[-1]])).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def indented(text: object, prefix: str = "  ") -> str:
    """Multi-line untrusted text, cleaned and indented under a heading."""
    body = clean(text).strip("\n")
    return "\n".join(prefix + ln if ln else "" for ln in body.splitlines()) if body else prefix + "-"
