"""File access for agents, confined to the project workspace.

Every path an agent gives is untrusted model output. Each file is opened through the confined opener
(`confined.py`): relative paths only, no symlinks followed, no writes through hard links, no
check-then-use race, and `.git` at any depth is off limits so an agent cannot rewrite history, plant
hooks or read credentials from the git config. A write or edit that leaves a Python file unparsable
is refused with the syntax error. Errors are `ToolError`s whose message is sent back to the model,
so each says what was wrong and what to do.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from wf_agent_runner import confined
from wf_agent_runner.confined import ConfinementError

MAX_READ_BYTES = 100_000
MAX_WRITE_BYTES = 200_000
MAX_LIST_ENTRIES = 300
MAX_SEARCH_MATCHES = 200
SEARCH_LINE_CHARS = 300
SEARCH_TIMEOUT_SECONDS = 20
# Not worth an agent's context: VCS internals, caches, installed dependencies.
SKIP_DIRS = frozenset(
    {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules", ".venv", "venv"}
)
AGENT_LOGS = ".workflow/agent_logs"


class ToolError(Exception):
    """A tool call the model got wrong; the message goes back to it as the tool result."""


class WorkspaceError(Exception):
    """The workspace itself is unusable (missing, not a directory); the job cannot run."""


WriteFilter = Callable[[str], str | None]  # relative path -> refusal reason, or None if allowed


def python_syntax_error(rel: str, text: str) -> str | None:
    """Why `text` is not valid Python, or None. Only for *.py files."""
    if not rel.endswith(".py"):
        return None
    try:
        ast.parse(text, filename=rel)
    except SyntaxError as err:
        where = f"line {err.lineno}" + (f", column {err.offset}" if err.offset else "")
        return (
            f"refused: {rel} would not be valid Python ({where}: {err.msg}); the file was not changed. "
            "Fix the syntax and try again"
        )
    except ValueError as err:  # e.g. NUL bytes in the source
        return f"refused: {rel} would not be valid Python ({err}); the file was not changed"
    return None


class Workspace:
    def __init__(self, root: str | Path, *, write_filter: WriteFilter | None = None) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise WorkspaceError(
                f"workspace {str(root)!r} does not exist or is not a directory; "
                "check the project's workspace path (`wf project`)"
            )
        self.root = Path(real)
        self.write_filter = write_filter
        self.changed: list[str] = []  # relative paths written or edited, in first-change order
        self.writes = 0  # how many writes and edits succeeded

    # -- paths ---------------------------------------------------------------------------------------

    def relative(self, path: str, *, for_write: bool = False) -> str:
        """The workspace-relative form of an agent's path ('.' for the root), or ToolError."""
        if not isinstance(path, str):
            raise ToolError(f"path must be a string, got {type(path).__name__}")
        try:
            parts = confined.split_relative(path)
        except ConfinementError as err:
            raise ToolError(str(err)) from None
        rel = "/".join(parts) or "."
        if for_write:
            if rel == ".":
                raise ToolError("the workspace root itself cannot be written; give a file path")
            if self.write_filter is not None and (reason := self.write_filter(rel)):
                raise ToolError(reason)
        return rel

    def _kind(self, fd: int, rel: str) -> str:
        try:
            return confined.kind(fd, rel)
        except ConfinementError as err:
            raise ToolError(str(err)) from None

    # -- operations ------------------------------------------------------------------------------------

    def list_files(self, path: str = ".") -> str:
        rel = self.relative(path)
        with confined.rooted(self.root) as root_fd:
            kind = self._kind(root_fd, rel)
            if kind == "file":
                return rel
            if kind != "dir":
                raise ToolError(f"{path!r} does not exist; call list_files('.') to see the workspace")
            try:
                dir_fd = confined.open_dir(root_fd, rel)
            except ConfinementError as err:
                raise ToolError(str(err)) from None
            try:
                entries, total = self._walk(dir_fd, rel)
            finally:
                os.close(dir_fd)
        if not entries:
            return f"(no files under {rel})"
        more = f"\n... and {total - len(entries)} more files" if total > len(entries) else ""
        return "\n".join(entries) + more

    def _walk(self, dir_fd: int, rel: str) -> tuple[list[str], int]:
        entries: list[str] = []
        total = 0
        prefix = "" if rel == "." else rel + "/"
        # fwalk never follows symlinks (follow_symlinks=False): a link to / lists nothing outside.
        for dirpath, dirnames, filenames, _ in os.fwalk(".", dir_fd=dir_fd):
            here = os.path.normpath(os.path.join(prefix, dirpath)).replace(os.sep, "/")
            here = "" if here == "." else here + "/"
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and f"{here}{d}" != AGENT_LOGS)
            for name in sorted(filenames):
                total += 1
                if len(entries) < MAX_LIST_ENTRIES:
                    entries.append(f"{here}{name}")
        return entries, total

    def read_file(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        rel = self.relative(path)
        with confined.rooted(self.root) as root_fd:
            kind = self._kind(root_fd, rel)
            if kind == "dir":
                raise ToolError(f"{rel!r} is a directory; use list_files({rel!r})")
            if kind == "missing":
                raise ToolError(f"{rel!r} does not exist; call list_files to see which files exist")
            try:
                data, size = confined.read_bytes(root_fd, rel, MAX_READ_BYTES + 1)
            except ConfinementError as err:
                raise ToolError(str(err)) from None
        if b"\x00" in data[:8192]:
            raise ToolError(f"{rel!r} is a binary file; only text files can be read")
        text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
        truncated = len(data) > MAX_READ_BYTES
        if start_line is not None or end_line is not None:
            return _line_range(rel, text, start_line, end_line, truncated)
        if truncated:
            text += f"\n[... truncated: showing the first {MAX_READ_BYTES} of {size} bytes]"
        return text

    def _read_for_edit(self, root_fd: int, rel: str) -> bytes | None:
        kind = self._kind(root_fd, rel)
        if kind == "dir":
            raise ToolError(f"{rel!r} is a directory")
        if kind == "missing":
            return None
        try:
            data, _ = confined.read_bytes(root_fd, rel, MAX_WRITE_BYTES * 4)
        except ConfinementError as err:
            raise ToolError(str(err)) from None
        return data

    def _write(self, root_fd: int, rel: str, data: bytes) -> None:
        try:
            confined.write_bytes(root_fd, rel, data)
        except ConfinementError as err:
            raise ToolError(str(err)) from None

    def write_file(self, path: str, content: str) -> str:
        if not isinstance(content, str):
            raise ToolError(f"content must be a string, got {type(content).__name__}")
        rel = self.relative(path, for_write=True)
        data = content.encode("utf-8")
        if len(data) > MAX_WRITE_BYTES:
            raise ToolError(
                f"content is {len(data)} bytes; the limit is {MAX_WRITE_BYTES}. Split it into smaller files"
            )
        if refusal := python_syntax_error(rel, content):
            raise ToolError(refusal)
        with confined.rooted(self.root) as root_fd:
            existed = self._read_for_edit(root_fd, rel) is not None
            self._write(root_fd, rel, data)
        self._mark(rel)
        return f"{'overwrote' if existed else 'created'} {rel} ({len(data)} bytes)"

    def edit_file(self, path: str, old: str, new: str) -> str:
        if not isinstance(old, str) or not isinstance(new, str):
            raise ToolError("old and new must be strings")
        rel = self.relative(path, for_write=True)
        if not old:
            with confined.rooted(self.root) as root_fd:
                missing = self._read_for_edit(root_fd, rel) is None
            if missing:  # what a model plausibly means by an edit of nothing in a new file
                return self.write_file(path, new)
            raise ToolError("old must not be empty; to create or replace a whole file use write_file")
        with confined.rooted(self.root) as root_fd:
            raw = self._read_for_edit(root_fd, rel)
            if raw is None:
                raise ToolError(f"{rel!r} does not exist; create it with write_file")
            try:
                # Bytes, not read_text: newline translation would rewrite CRLF files on every edit.
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ToolError(f"{rel!r} is not UTF-8 text; it cannot be edited") from None
            count = text.count(old)
            if count != 1:
                hint = (
                    "copy the exact text from read_file, including whitespace"
                    if count == 0
                    else "include more surrounding lines so that old matches exactly one place"
                )
                raise ToolError(f"old occurs {count} times in {rel}; it must occur exactly once: {hint}")
            updated = text.replace(old, new, 1)
            if len(updated.encode("utf-8")) > MAX_WRITE_BYTES:  # checked before writing: no half edits
                raise ToolError(f"the edited file would exceed {MAX_WRITE_BYTES} bytes")
            if refusal := python_syntax_error(rel, updated):
                raise ToolError(refusal)
            self._write(root_fd, rel, updated.encode("utf-8"))
        self._mark(rel)
        return f"edited {rel}: replaced 1 occurrence ({len(old)} -> {len(new)} chars)"

    def search(self, pattern: str, path: str = ".") -> str:
        """Lines matching a regular expression, as 'path:line: text' (ripgrep when installed)."""
        if not isinstance(pattern, str) or not pattern:
            raise ToolError("pattern must be a non-empty string (a regular expression)")
        rel = self.relative(path)
        with confined.rooted(self.root) as root_fd:
            if self._kind(root_fd, rel) == "missing":
                raise ToolError(f"{path!r} does not exist; call list_files('.') to see the workspace")
            if rel != ".":  # a symlinked directory would be refused here, before any search
                try:
                    os.close(confined.open_dir(root_fd, rel))
                except NotADirectoryError:
                    pass
                except ConfinementError as err:
                    raise ToolError(str(err)) from None
        rg = shutil.which("rg")
        lines = self._search_rg(rg, pattern, rel) if rg else self._search_python(pattern, rel)
        if not lines:
            return f"no match for {pattern!r} under {rel}"
        more = ""
        if len(lines) > MAX_SEARCH_MATCHES:
            more = f"\n... more matches not shown (first {MAX_SEARCH_MATCHES}); narrow the pattern or path"
        return "\n".join(lines[:MAX_SEARCH_MATCHES]) + more

    def _search_rg(self, rg: str, pattern: str, rel: str) -> list[str]:
        # ripgrep's regex engine runs in linear time, so a model's pattern cannot hang the runner;
        # it never follows symlinks unless told to. The pattern is data (-e), never a shell word.
        argv = [
            rg,
            "--no-follow",
            "--no-heading",
            "--line-number",
            "--color",
            "never",
            "--hidden",
            "--max-filesize",
            "1M",
            "--max-count",
            "50",
            "--glob",
            "!.git",
            "--glob",
            f"!{AGENT_LOGS}",
            "--max-columns",
            str(SEARCH_LINE_CHARS),
            "--max-columns-preview",
            "-e",
            pattern,
            "--",
            rel,
        ]
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell; the pattern is an argument
                argv,
                cwd=self.root,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=SEARCH_TIMEOUT_SECONDS,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ToolError(f"search took longer than {SEARCH_TIMEOUT_SECONDS}s; narrow the path") from None
        if done.returncode == 2 and not done.stdout:
            raise ToolError(f"invalid search pattern {pattern!r}: {done.stderr.strip()[:300]}")
        out = done.stdout.splitlines()
        return [ln[2:] if ln.startswith("./") else ln for ln in out[: MAX_SEARCH_MATCHES + 1]]

    def _search_python(self, pattern: str, rel: str) -> list[str]:
        try:
            rx = re.compile(pattern)
        except re.error as err:
            raise ToolError(f"invalid search pattern {pattern!r}: {err}") from None
        found: list[str] = []
        with confined.rooted(self.root) as root_fd:
            kind = self._kind(root_fd, rel)
            names = [rel] if kind == "file" else []
            if kind == "dir":
                dir_fd = confined.open_dir(root_fd, rel)
                try:
                    names, _ = self._walk(dir_fd, rel)
                finally:
                    os.close(dir_fd)
            for name in names:
                try:
                    data, _ = confined.read_bytes(root_fd, name, 1_000_000)
                except (ConfinementError, OSError):
                    continue
                if b"\x00" in data[:8192]:
                    continue
                for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
                    if rx.search(line[: SEARCH_LINE_CHARS * 4]):
                        found.append(f"{name}:{n}:{line[:SEARCH_LINE_CHARS]}")
                        if len(found) > MAX_SEARCH_MATCHES:
                            return found
        return found

    def _mark(self, rel: str) -> None:
        self.writes += 1
        if rel not in self.changed:
            self.changed.append(rel)


def _line_range(rel: str, text: str, start: int | None, end: int | None, truncated: bool) -> str:
    lines = text.splitlines()
    first = max(1, start or 1)
    last = min(len(lines), end or len(lines))
    if first > len(lines):
        raise ToolError(f"{rel} has {len(lines)} lines; start_line {first} is past the end")
    if last < first:
        raise ToolError(f"end_line ({end}) is before start_line ({first})")
    body = "\n".join(f"{n}: {lines[n - 1]}" for n in range(first, last + 1))
    note = f"[lines {first}-{last} of {len(lines)}{'+ (file truncated)' if truncated else ''}]"
    return f"{body}\n{note}"
