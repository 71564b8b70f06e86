"""Files a stage attaches to its result (E2E screenshots, traces, logs): collected from a directory
of the workspace through the confined opener (no symlinks followed, no hard links to files outside:
a planted link cannot smuggle a host file into an attachment), within size caps."""

from __future__ import annotations

import base64
import mimetypes
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from wf_common.jobs import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS_BYTES, ResultFile

from wf_agent_runner import confined

MAX_FILES = 20
KEEP_SUFFIXES = (".png", ".jpg", ".jpeg", ".webm", ".zip", ".txt", ".log", ".json", ".html", ".xml", ".md")
TYPES = {".zip": "application/zip", ".webm": "video/webm", ".log": "text/plain", ".md": "text/plain"}
# Screenshots first: they are what a human looks at; traces (zip) and videos are large.
ORDER = {".png": 0, ".jpg": 0, ".jpeg": 0, ".txt": 1, ".log": 1, ".md": 1, ".json": 2, ".html": 2,
         ".xml": 2, ".zip": 3, ".webm": 4}  # fmt: skip


@dataclass
class Collected:
    files: list[ResultFile] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # "name (why)"


def content_type(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    return TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def as_file(name: str, data: bytes, ctype: str | None = None) -> ResultFile:
    data = data[:MAX_ATTACHMENT_BYTES]
    return ResultFile(
        filename=name[:255],
        content_type=ctype or content_type(name),
        content_b64=base64.b64encode(data).decode("ascii"),
        size=len(data),
    )


def _candidates(root_fd: int, rel_dir: str) -> list[str]:
    """Regular, singly linked files under `rel_dir` (relative to the root), symlinks not followed."""
    found: list[str] = []
    try:
        dir_fd = confined.open_dir(root_fd, rel_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    try:
        for dirpath, _dirs, names, fd in os.fwalk(".", dir_fd=dir_fd, follow_symlinks=False):
            for name in names:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and name.lower().endswith(KEEP_SUFFIXES):
                    rel = os.path.normpath(os.path.join(rel_dir, dirpath, name))
                    found.append(rel)
            if len(found) > 200:
                break
    finally:
        os.close(dir_fd)
    return found


def collect(root: Path, rel_dir: str, budget: int = MAX_ATTACHMENTS_BYTES) -> Collected:
    """Attachments from `rel_dir`: screenshots first, each at most MAX_ATTACHMENT_BYTES, all within
    `budget`; what does not fit is named in `left_out`."""
    out = Collected()
    with confined.rooted(root) as root_fd:
        try:
            paths = _candidates(root_fd, rel_dir)
        except confined.ConfinementError as err:
            out.left_out.append(f"{rel_dir} ({err})")
            return out
        paths.sort(key=lambda p: (ORDER.get(os.path.splitext(p)[1].lower(), 5), p))
        for rel in paths:
            if len(out.files) >= MAX_FILES:
                out.left_out.append(f"{rel} (more than {MAX_FILES} files)")
                continue
            try:
                data, size = confined.read_bytes(root_fd, rel, MAX_ATTACHMENT_BYTES + 1)
            except (OSError, confined.ConfinementError) as err:
                out.left_out.append(f"{rel} ({err})")
                continue
            if size > MAX_ATTACHMENT_BYTES:
                out.left_out.append(f"{rel} ({size} bytes; the limit is {MAX_ATTACHMENT_BYTES})")
                continue
            if size > budget:
                out.left_out.append(f"{rel} ({size} bytes; over the result's remaining {budget} bytes)")
                continue
            budget -= size
            out.files.append(as_file(rel.replace("/", "_"), data))
    return out
