"""Serving files written by agents without letting them run in the browser.

An attachment's name and type come from model output, so both are untrusted: the file is always sent
as a download (Content-Disposition: attachment) with a name stripped of paths, quotes and control
characters; active types (HTML, SVG, XML, scripts) are sent as octet-stream; nosniff stops the browser
from guessing otherwise; the CSP sandbox covers a browser that renders it anyway.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncConnection

from wf_board_api.attachments import repository
from wf_board_api.errors import NotFound

_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_ACTIVE = re.compile(r"html|xml|svg|script|ecmascript|x-shockwave|pdf")
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._ ()+-]")
FALLBACK_NAME = "attachment"
MAX_NAME = 150


def safe_media_type(content_type: str) -> str:
    base = content_type.split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.match(base) or _ACTIVE.search(base):
        return "application/octet-stream"
    return base


def safe_filename(filename: str) -> str:
    name = PurePosixPath(filename.replace("\\", "/")).name
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C" and c not in "\"';")
    name = name.strip().lstrip(".")[:MAX_NAME]
    return name or FALLBACK_NAME


def content_disposition(filename: str) -> str:
    name = safe_filename(filename)
    ascii_name = _UNSAFE_ASCII.sub("_", name).strip() or FALLBACK_NAME
    # filename* (RFC 6266/5987) carries the real UTF-8 name; filename is for old clients.
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


class Download:
    def __init__(self, content: bytes, media_type: str, headers: dict[str, str]) -> None:
        self.content = content
        self.media_type = media_type
        self.headers = headers


async def download(conn: AsyncConnection, attachment_id: int) -> Download:
    row = await repository.get(conn, attachment_id)
    if row is None:
        raise NotFound(f"attachment {attachment_id} not found")
    return Download(
        bytes(row["content"]),
        safe_media_type(str(row["content_type"])),
        {
            "Content-Disposition": content_disposition(str(row["filename"])),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "no-store",
        },
    )
