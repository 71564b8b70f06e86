"""Read-only git for the diff view: branch `wf/<KEY>` against the main branch, or else the task's
commits found by their `Workflow-Job: <project>/<KEY>/…` trailer.

git runs as a subprocess with hooks, external diff drivers and text conversion off (the repository's
own config must not run anything), and its output is capped.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from wf_board_api.diff.schemas import DiffFile, DiffHunk, DiffLine, DiffOut

MAX_BYTES = 2_000_000
GIT_TIMEOUT = 20.0
HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
SAFE = (
    "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "diff.external=",
    "-c", "core.pager=cat", "-c", "color.ui=false",
)  # fmt: skip
MAIN_CANDIDATES = ("main", "master", "trunk")


class GitError(RuntimeError):
    pass


async def git(repo: Path, *args: str) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "git", *SAFE, "-C", str(repo), *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), GIT_TIMEOUT)
    except TimeoutError as err:
        proc.kill()
        await proc.wait()
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT:.0f}s") from err
    return proc.returncode or 0, out


async def _ref_exists(repo: Path, ref: str) -> bool:
    code, _ = await git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{ref}")
    return code == 0


async def _main_branch(repo: Path, branch: str) -> str | None:
    code, out = await git(repo, "symbolic-ref", "--short", "HEAD")
    head = out.decode().strip() if code == 0 else ""
    if head and head != branch:
        return head
    for name in MAIN_CANDIDATES:
        if await _ref_exists(repo, name):
            return name
    return None


async def task_diff(workspace: str, project: str, key: str) -> DiffOut:
    repo = Path(workspace)
    if not (repo / ".git").exists():
        return DiffOut(source="none", files=[], message=f"the workspace {workspace} is not a git repository")
    branch = f"wf/{key}"
    if await _ref_exists(repo, branch):
        base = await _main_branch(repo, branch)
        if base is not None:
            code, out = await git(repo, "diff", "--no-ext-diff", "--no-textconv", "-M", f"{base}...{branch}")
            if code != 0:
                raise GitError(f"git diff {base}...{branch} failed")
            files, truncated = parse_diff(out)
            return DiffOut(source="branch", base=base, branch=branch, files=files, truncated=truncated)
    trailer = f"Workflow-Job: {project}/{key}/"
    code, out = await git(
        repo, "log", "--all", "--reverse", "--format=%H", "--fixed-strings", f"--grep={trailer}"
    )
    commits = out.decode().split() if code == 0 else []
    if not commits:
        return DiffOut(source="none", files=[], message=f"no branch {branch} and no commits of {key} yet")
    code, out = await git(
        repo, "show", "--no-ext-diff", "--no-textconv", "-M", "--format=", "--patch", *commits
    )
    if code != 0:
        raise GitError("git show of the task's commits failed")
    files, truncated = parse_diff(out)
    return DiffOut(source="commits", commits=commits, files=files, truncated=truncated)


def parse_diff(raw: bytes) -> tuple[list[DiffFile], bool]:
    """Unified diff → files with numbered lines. Over MAX_BYTES the rest is left out (truncated)."""
    truncated = len(raw) > MAX_BYTES
    text = raw[:MAX_BYTES].decode("utf-8", "replace")
    files: list[DiffFile] = []
    current: DiffFile | None = None
    hunk: DiffHunk | None = None
    old = new = 0
    for line in text.splitlines():
        if line.startswith("diff --git "):
            parts = line[len("diff --git ") :].split(" b/", 1)
            path = parts[1] if len(parts) == 2 else line
            current = DiffFile(path=path)
            files.append(current)
            hunk = None
            continue
        if current is None:
            continue
        if hunk is None or not line or line[0] not in " +-\\":
            if line.startswith("new file mode"):
                current.status = "added"
            elif line.startswith("deleted file mode"):
                current.status = "deleted"
            elif line.startswith("rename from "):
                current.status = "renamed"
                current.old_path = line[len("rename from ") :]
            elif line.startswith("Binary files"):
                current.status = "binary"
            match = HUNK.match(line)
            if match:
                old, new = int(match.group(1)), int(match.group(2))
                hunk = DiffHunk(header=line, lines=[])
                current.hunks.append(hunk)
            continue
        if line[0] == "+":
            hunk.lines.append(DiffLine(kind="add", new=new, text=line[1:]))
            new += 1
        elif line[0] == "-":
            hunk.lines.append(DiffLine(kind="del", old=old, text=line[1:]))
            old += 1
        elif line[0] == " ":
            hunk.lines.append(DiffLine(kind="context", old=old, new=new, text=line[1:]))
            old += 1
            new += 1
    return files, truncated
