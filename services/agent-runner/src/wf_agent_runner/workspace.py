"""File access for agents, confined to the project workspace.

Every path an agent gives is untrusted model output. It must be relative, and after resolving `..`
and symlinks (`os.path.realpath`) it must still lie inside the workspace; `.git/` is off limits so an
agent cannot rewrite history, plant hooks or read credentials from the git config. Errors are
`ToolError`s whose message is sent back to the model, so each says what was wrong and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

MAX_READ_BYTES = 100_000
MAX_WRITE_BYTES = 200_000
MAX_LIST_ENTRIES = 300
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

    # -- paths ---------------------------------------------------------------------------------------

    def resolve(self, path: str, *, for_write: bool = False) -> tuple[Path, str]:
        """The real path and its workspace-relative form, or ToolError if it escapes the workspace."""
        if not isinstance(path, str):
            raise ToolError(f"path must be a string, got {type(path).__name__}")
        cleaned = path.strip() or "."
        if "\x00" in cleaned:
            raise ToolError("path contains a NUL byte")
        if os.path.isabs(cleaned) or cleaned.startswith("~"):
            raise ToolError(
                f"{path!r} is an absolute path; use a path relative to the workspace root, e.g. 'src/app.py'"
            )
        real = os.path.realpath(os.path.join(self.root, cleaned))
        root = str(self.root)
        if real != root and os.path.commonpath([root, real]) != root:
            raise ToolError(
                f"{path!r} resolves outside the workspace (via '..' or a symlink); "
                "only files inside the workspace can be used"
            )
        rel = os.path.relpath(real, root)
        rel = "." if rel == "." else rel.replace(os.sep, "/")
        if rel.split("/")[0].lower() == ".git":  # lower(): ".GIT" is the same directory on macOS
            # Writes could rewrite history or plant hooks; reads could leak credentials in remote URLs.
            raise ToolError(f"{path!r} is inside .git/; agents cannot read or write git internals")
        if for_write:
            if rel == ".":
                raise ToolError("the workspace root itself cannot be written; give a file path")
            if self.write_filter is not None and (reason := self.write_filter(rel)):
                raise ToolError(reason)
        return Path(real), rel

    # -- operations ------------------------------------------------------------------------------------

    def list_files(self, path: str = ".") -> str:
        real, rel = self.resolve(path)
        if real.is_file():
            return rel
        if not real.is_dir():
            raise ToolError(f"{path!r} does not exist; call list_files('.') to see the workspace")
        entries: list[str] = []
        total = 0
        for dirpath, dirnames, filenames in os.walk(real):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not self._is_logs(dirpath, d))
            for name in sorted(filenames):
                total += 1
                if len(entries) < MAX_LIST_ENTRIES:
                    entries.append(
                        os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                    )
        if not entries:
            return f"(no files under {rel})"
        more = f"\n... and {total - len(entries)} more files" if total > len(entries) else ""
        return "\n".join(entries) + more

    def _is_logs(self, dirpath: str, name: str) -> bool:
        # The agents' own transcripts are noise for the model and may be large.
        return os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/") == AGENT_LOGS

    def read_file(self, path: str) -> str:
        real, rel = self.resolve(path)
        if real.is_dir():
            raise ToolError(f"{rel!r} is a directory; use list_files({rel!r})")
        if not real.is_file():
            raise ToolError(f"{rel!r} does not exist; call list_files to see which files exist")
        with open(real, "rb") as f:
            data = f.read(MAX_READ_BYTES + 1)
        if b"\x00" in data[:8192]:
            raise ToolError(f"{rel!r} is a binary file; only text files can be read")
        text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
        if len(data) > MAX_READ_BYTES:
            size = real.stat().st_size
            text += f"\n[... truncated: showing the first {MAX_READ_BYTES} of {size} bytes]"
        return text

    def write_file(self, path: str, content: str) -> str:
        if not isinstance(content, str):
            raise ToolError(f"content must be a string, got {type(content).__name__}")
        real, rel = self.resolve(path, for_write=True)
        data = content.encode("utf-8")
        if len(data) > MAX_WRITE_BYTES:
            raise ToolError(
                f"content is {len(data)} bytes; the limit is {MAX_WRITE_BYTES}. Split it into smaller files"
            )
        if real.is_dir():
            raise ToolError(f"{rel!r} is a directory")
        real.parent.mkdir(parents=True, exist_ok=True)
        existed = real.exists()
        real.write_bytes(data)
        self._mark(rel)
        return f"{'overwrote' if existed else 'created'} {rel} ({len(data)} bytes)"

    def edit_file(self, path: str, old: str, new: str) -> str:
        if not isinstance(old, str) or not isinstance(new, str):
            raise ToolError("old and new must be strings")
        if not old:
            raise ToolError("old must not be empty; to create or replace a whole file use write_file")
        real, rel = self.resolve(path, for_write=True)
        if not real.is_file():
            raise ToolError(f"{rel!r} does not exist; create it with write_file")
        try:
            # Bytes, not read_text: newline translation would rewrite CRLF files on every edit.
            text = real.read_bytes().decode("utf-8")
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
        real.write_bytes(updated.encode("utf-8"))
        self._mark(rel)
        return f"edited {rel}: replaced 1 occurrence ({len(old)} -> {len(new)} chars)"

    def _mark(self, rel: str) -> None:
        if rel not in self.changed:
            self.changed.append(rel)
