"""What a task changed, read with git (the runner's own, trusted git; nothing model-written runs).

A task on its own branch (`wf/<KEY>`, per-task worktrees) changed what lies between the merge base
with `main` and HEAD. Without a task branch, the task's commits are those whose subject starts with
`<KEY>:` (every agent commit is named so). Uncommitted changes count too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from wf_agent_runner.gitrepo import git
from wf_agent_runner.jobchanges import status_paths

BASE_BRANCHES = ("main", "master")
WORKFLOW_DIR = ".workflow/"


@dataclass(frozen=True)
class DiffLine:
    path: str
    line: int  # in the new file
    text: str
    commit: str = ""


async def current_branch(root: Path) -> str:
    code, out = await git(root, "symbolic-ref", "--short", "-q", "HEAD", check=False)
    return out.strip() if code == 0 else ""


async def task_base(root: Path, key: str) -> str | None:
    """The commit the task's branch started from, or None when the task has no branch of its own."""
    if await current_branch(root) != f"wf/{key}":
        return None
    for name in BASE_BRANCHES:
        code, out = await git(root, "merge-base", "HEAD", name, check=False)
        if code == 0 and out.strip():
            return out.strip()
    return None


async def task_commits(root: Path, key: str) -> list[str]:
    """The task's commits, oldest first."""
    base = await task_base(root, key)
    if base is not None:
        code, out = await git(root, "rev-list", "--reverse", f"{base}..HEAD", check=False)
        return out.split() if code == 0 else []
    code, out = await git(
        root, "log", "--reverse", "--format=%H", "-E", f"--grep=^{re.escape(key)}:", check=False
    )
    return out.split() if code == 0 else []


async def commit_paths(root: Path, commits: list[str]) -> list[str]:
    paths: list[str] = []
    for sha in commits:
        _, out = await git(root, "show", "--name-only", "--format=", "-z", sha, check=False)
        paths += [p for p in out.split("\0") if p.strip() and p not in paths]
    return paths


async def uncommitted_paths(root: Path) -> list[str]:
    """Changed, new and deleted files of the worktree (the runner's .workflow/ is left out)."""
    return [p for p in await status_paths(root) if not p.startswith(WORKFLOW_DIR)]


async def task_paths(root: Path, key: str) -> list[str]:
    """Every file the task changed so far (committed or not)."""
    paths = await commit_paths(root, await task_commits(root, key))
    return paths + [p for p in await uncommitted_paths(root) if p not in paths]


_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def parse_patch(patch: str) -> tuple[list[DiffLine], list[DiffLine]]:
    """(added lines, removed lines) of a `git show`/`git log -p` patch. Commit lines (`commit <sha>`,
    from `git log -p --format=commit %H`) set the commit of the lines after them."""
    added: list[DiffLine] = []
    removed: list[DiffLine] = []
    path = old_path = commit = ""
    line = 0
    for raw in patch.splitlines():
        if raw.startswith("commit ") and len(raw) == 47:
            commit = raw[7:]
        elif raw.startswith("--- "):
            old_path = raw[6:] if raw.startswith("--- a/") else ""
        elif raw.startswith("+++ "):
            path = raw[6:] if raw.startswith("+++ b/") else old_path
        elif m := _HUNK.match(raw):
            line = int(m.group(1))
        elif raw.startswith("+"):
            added.append(DiffLine(path, line, raw[1:], commit))
            line += 1
        elif raw.startswith("-"):
            removed.append(DiffLine(path or old_path, line, raw[1:], commit))
        elif raw.startswith(" "):
            line += 1
    return added, removed


async def commits_patch(root: Path, commits: list[str]) -> str:
    """The patches of `commits`, each after a `commit <sha>` line."""
    if not commits:
        return ""
    _, out = await git(
        root, "show", "--no-color", "--no-ext-diff", "--format=commit %H", "-U0", *commits, check=False
    )
    return out


HISTORY_COMMITS = 1000


async def history_patch(root: Path) -> str:
    """The patches of the branch's whole history (the task's base and before included: a secret
    committed once stays in the history even if a later commit removes it)."""
    code, out = await git(
        root, "log", "-p", "--no-color", "--no-ext-diff", "--format=commit %H", "-U0",
        f"--max-count={HISTORY_COMMITS}", "HEAD", check=False,
    )  # fmt: skip
    return out if code == 0 else ""
