"""Markdown, the source of truth, to and from what trackers store: Jira's ADF and Asana's html_notes.

The subset the bridge writes (paragraphs, `## ` headings, `- ` lists, HTML comments as markers) round-trips
exactly; richer formatting a human adds there comes back as its text.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any


def _blocks(md: str) -> list[tuple[str, Any]]:
    """Markdown → [("heading", (level, text)) | ("list", [items]) | ("para", text)]."""
    blocks: list[tuple[str, Any]] = []
    para: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(("para", "\n".join(para)))
            para.clear()
        if items:
            blocks.append(("list", list(items)))
            items.clear()

    for line in md.replace("\r\n", "\n").split("\n"):
        s = line.strip()
        if not s:
            flush()
        elif m := re.match(r"^(#{1,6})\s+(.*)$", s):
            flush()
            blocks.append(("heading", (len(m.group(1)), m.group(2).strip())))
        elif s.startswith(("- ", "* ")):
            if para:
                blocks.append(("para", "\n".join(para)))
                para.clear()
            items.append(s[2:].strip())
        else:
            if items:
                blocks.append(("list", list(items)))
                items.clear()
            para.append(s)
    flush()
    return blocks


def _from_blocks(blocks: list[tuple[str, Any]]) -> str:
    out = []
    for kind, value in blocks:
        if kind == "heading":
            out.append("#" * value[0] + " " + value[1])
        elif kind == "list":
            out.append("\n".join(f"- {i}" for i in value))
        else:
            out.append(value)
    return "\n\n".join(out)


# ------------------------------------------------------------------------------------------ Jira ADF


def _text(t: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": t}] if t else []


def markdown_to_adf(md: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for kind, value in _blocks(md):
        if kind == "heading":
            content.append({"type": "heading", "attrs": {"level": value[0]}, "content": _text(value[1])})
        elif kind == "list":
            content.append(
                {
                    "type": "bulletList",
                    "content": [
                        {"type": "listItem", "content": [{"type": "paragraph", "content": _text(i)}]}
                        for i in value
                    ],
                }
            )
        else:
            lines = value.split("\n")
            nodes: list[dict[str, Any]] = []
            for i, ln in enumerate(lines):
                if i:
                    nodes.append({"type": "hardBreak"})
                nodes.extend(_text(ln))
            content.append({"type": "paragraph", "content": nodes})
    return {"type": "doc", "version": 1, "content": content}


def _inline(nodes: list[dict[str, Any]]) -> str:
    parts = []
    for n in nodes or []:
        if n.get("type") == "text":
            parts.append(str(n.get("text", "")))
        elif n.get("type") == "hardBreak":
            parts.append("\n")
        elif n.get("content"):
            parts.append(_inline(n["content"]))
    return "".join(parts)


def adf_to_markdown(doc: dict[str, Any] | None) -> str:
    if not doc:
        return ""
    blocks: list[tuple[str, Any]] = []
    for node in doc.get("content") or []:
        kind = node.get("type")
        if kind == "heading":
            blocks.append(
                ("heading", (int((node.get("attrs") or {}).get("level", 2)), _inline(node.get("content"))))
            )
        elif kind in ("bulletList", "orderedList"):
            items = [
                _inline(p.get("content")) for li in node.get("content") or [] for p in li.get("content") or []
            ]
            blocks.append(("list", items))
        else:
            blocks.append(("para", _inline(node.get("content"))))
    return _from_blocks(blocks)


# ---------------------------------------------------------------------------------- Asana html_notes


def markdown_to_asana_html(md: str) -> str:
    out = []
    for kind, value in _blocks(md):
        if kind == "heading":
            level = 1 if value[0] == 1 else 2  # Asana knows <h1> and <h2>
            out.append(f"<h{level}>{html.escape(value[1], quote=False)}</h{level}>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{html.escape(i, quote=False)}</li>" for i in value) + "</ul>")
        else:
            out.append(html.escape(value, quote=False))
    return "<body>" + "\n\n".join(out) + "</body>"


class _AsanaParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, Any]] = []
        self._text: list[str] = []
        self._heading: int | None = None
        self._items: list[str] | None = None
        self._in_li = False

    def _flush_para(self) -> None:
        text = "".join(self._text).strip("\n")
        self._text = []
        for chunk in re.split(r"\n\s*\n", text):
            if chunk.strip():
                self.blocks.append(("para", "\n".join(s.strip() for s in chunk.strip().split("\n"))))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h1", "h2"):
            self._flush_para()
            self._heading = int(tag[1])
        elif tag in ("ul", "ol"):
            self._flush_para()
            self._items = []
        elif tag == "li":
            self._in_li = True
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2") and self._heading is not None:
            self.blocks.append(("heading", (self._heading, "".join(self._text).strip())))
            self._text, self._heading = [], None
        elif tag == "li" and self._items is not None:
            self._items.append("".join(self._text).strip())
            self._text, self._in_li = [], False
        elif tag in ("ul", "ol") and self._items is not None:
            self.blocks.append(("list", self._items))
            self._items = None
        elif tag == "body":
            self._flush_para()

    def handle_data(self, data: str) -> None:
        self._text.append(data)


def asana_html_to_markdown(notes: str) -> str:
    p = _AsanaParser()
    p.feed(notes if notes.startswith("<body>") else f"<body>{html.escape(notes, quote=False)}</body>")
    p.close()
    return _from_blocks(p.blocks)
