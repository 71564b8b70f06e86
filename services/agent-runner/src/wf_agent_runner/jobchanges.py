"""What a job changed in its worktree, whatever made the change: the file tools, a shell command of the
`run` tool (`cat > x <<EOF`, `sed -i`, a code generator, `mkdir -p pkg && touch pkg/__init__.py`) or an
external coding agent.

`snapshot()` records the worktree's uncommitted state when the job starts (`git status`, each dirty
path with a fingerprint of what it holds). `since()` lists, at the end, every path `git status` shows
(tracked files modified or deleted, untracked files the project's .gitignore does not ignore) that
changed after that snapshot. A file that was already dirty when the job started (a human's uncommitted
edit, a leftover of an earlier failed attempt) is never swept into the job's commit: unchanged, it is
not the job's work; changed further, committing it would commit the earlier edit with it, so it is left
uncommitted and reported instead. (A path the agent wrote with write_file/edit_file is its declared
work and is committed by the caller either way.)

Never committed, and reported: the platform's own `.workflow/`; what a run typically leaves where the
project has no .gitignore for it (caches, installed dependencies, virtualenvs, `*.pyc`: `SKIP_DIRS`),
anything under a `.git` directory or a nested repository; files larger than `MAX_WRITE_BYTES`; anything
not a regular file or a symlink; a symlink whose target leaves the worktree (it is never followed:
files are opened through `confined.py`) and any path behind a symlinked directory.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from wf_agent_runner import confined
from wf_agent_runner.confined import ConfinementError
from wf_agent_runner.gitrepo import git
from wf_agent_runner.workspace import MAX_WRITE_BYTES, SKIP_DIRS

WORKFLOW_DIR = ".workflow/"
JUNK_SUFFIXES = (".pyc", ".pyo")
REPORTED_REFUSALS = 10  # named in the log line; the rest are counted


@dataclass(frozen=True)
class Baseline:
    """The worktree's dirty paths at job start, each with a fingerprint of its content then."""

    dirty: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Changes:
    paths: list[str]  # changed since the baseline and fit to commit, in `git status` order
    refused: list[tuple[str, str]]  # (path, why it is not committed)

    def refusal_note(self) -> str:
        """One line naming what was left uncommitted and why ("" when nothing was)."""
        if not self.refused:
            return ""
        named = "; ".join(f"{p} ({why})" for p, why in self.refused[:REPORTED_REFUSALS])
        more = len(self.refused) - REPORTED_REFUSALS
        return f"not committed, left in the worktree: {named}" + (f"; and {more} more" if more > 0 else "")


async def status_paths(root: Path) -> list[str]:
    """Every path `git status` shows as changed, new (not ignored) or deleted; both sides of a rename."""
    _, out = await git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", check=False)
    paths: list[str] = []
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC" and (old := next(entries, "")):
            paths.append(old)
    return paths


def junk_reason(path: str) -> str | None:
    """Why `path` is never committed whatever its content, or None."""
    if path.startswith(WORKFLOW_DIR):
        return "the platform's own files"
    if path.endswith("/"):  # git shows a nested repository as its directory
        return "a nested git repository"
    parts = path.split("/")
    if any(p.lower() == ".git" for p in parts):
        return "inside a .git directory"
    if hit := next((p for p in parts[:-1] if p in SKIP_DIRS), None):
        return f"under {hit}/, a cache or installed dependencies: add it to .gitignore"
    if path.endswith(JUNK_SUFFIXES):
        return "compiled Python: add it to .gitignore"
    return None


class Refused(Exception):
    """The path exists but must not be committed; the message says why."""


def fingerprint(root_fd: int, path: str) -> str:
    """What `path` holds now, without following any symlink: 'missing', 'file:<sha256>' or
    'link:<target>'; `Refused` for anything that must not be committed."""
    try:
        kind = confined.kind(root_fd, path)
    except ConfinementError:
        return _link(root_fd, path)
    if kind == "missing":
        return "missing"
    if kind != "file":
        raise Refused("not a regular file")
    try:
        data, size = confined.read_bytes(root_fd, path, MAX_WRITE_BYTES + 1)
    except ConfinementError as err:
        raise Refused(str(err)) from None
    except FileNotFoundError:
        return "missing"
    if size > MAX_WRITE_BYTES:
        raise Refused(f"{size} bytes, over the {MAX_WRITE_BYTES}-byte limit")
    return "file:" + hashlib.sha256(data).hexdigest()


def _link(root_fd: int, path: str) -> str:
    """A symlink's fingerprint; `Refused` if it points outside the worktree or lies behind one."""
    parent, _, name = path.rpartition("/")
    try:
        dir_fd = confined.open_dir(root_fd, parent or ".")
    except (ConfinementError, OSError):
        raise Refused("behind a symbolic link") from None
    try:
        target = os.readlink(name, dir_fd=dir_fd)
    except OSError as err:
        if err.errno == errno.EINVAL:  # not a link: the component that is, is a parent
            raise Refused("behind a symbolic link") from None
        raise Refused(f"unreadable symbolic link ({err.strerror})") from None
    finally:
        os.close(dir_fd)
    resolved = posixpath.normpath(posixpath.join(parent, target))
    if (
        target.startswith("/")
        or resolved == ".."
        or resolved.startswith("../")
        or any(p.lower() == ".git" for p in resolved.split("/"))
    ):
        raise Refused(f"a symbolic link to {target!r}, outside the worktree")
    return f"link:{target}"


async def snapshot(root: Path) -> Baseline:
    """The worktree's dirty state now (call it when the job starts)."""
    paths = await status_paths(root)

    def work() -> dict[str, str]:
        with confined.rooted(root) as root_fd:
            return {path: _state(root_fd, path) for path in paths}

    return Baseline(await asyncio.to_thread(work))


def _state(root_fd: int, path: str) -> str:
    """The fingerprint, or 'junk:<why>' / 'refused:<why>' for what is never committed."""
    if (why := junk_reason(path)) is not None:
        return f"junk:{why}"  # not read: there may be thousands (node_modules/)
    try:
        return fingerprint(root_fd, path)
    except Refused as err:
        return f"refused:{err}"


async def since(root: Path, baseline: Baseline) -> Changes:
    """What changed in the worktree after `baseline` and may be committed, and what may not (a path
    left as it was at the baseline is neither: it is not the job's)."""
    status = await status_paths(root)

    def work() -> Changes:
        paths: list[str] = []
        refused: list[tuple[str, str]] = []
        with confined.rooted(root) as root_fd:
            for path in dict.fromkeys(status):
                now = _state(root_fd, path)
                before = baseline.dirty.get(path)
                if now == before or (before or "").startswith("junk:") or path.startswith(WORKFLOW_DIR):
                    continue
                if now.startswith(("junk:", "refused:")):
                    refused.append((path, now.partition(":")[2]))
                elif before is not None:
                    refused.append((path, "already changed before the job started; commit it yourself"))
                else:
                    paths.append(path)
        return Changes(paths, refused)

    return await asyncio.to_thread(work)
