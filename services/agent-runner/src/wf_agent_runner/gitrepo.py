"""The git operations agents need, through `wf_common.gitops.SafeGit` (hooks, fsmonitor, filters and
every other program a workspace's configuration could name are disabled; see that module).

Functions take the directory the agent works in. A project's main checkout is trusted by its own
`.git` directory; a task's worktree is trusted only once `trusted_worktree()` (the job's setup in
`worktrees.py`) has registered its git dir, which comes from the project repository: the `.git` file
inside a worktree is agent-writable and never read.

Commits made for a job carry a `Workflow-Job: <idempotency key>` trailer. A redelivered job looks
for that trailer first, so the same work is never committed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wf_common.gitops.safe import Checkout, GitError, SafeGit

TRAILER = "Workflow-Job"

__all__ = ["TRAILER", "Author", "GitError", "commit_job", "ensure_repo", "trusted_worktree"]

# Worktrees of the jobs running in this process: work tree -> its checkout (git dir from the repo).
_WORKTREES: dict[Path, Checkout] = {}


@contextlib.contextmanager
def trusted_worktree(checkout: Checkout) -> Iterator[None]:
    """While a job runs: git operations on `checkout.work_tree` use `checkout.git_dir`."""
    key = _key(checkout.work_tree)
    _WORKTREES[key] = checkout
    try:
        yield
    finally:
        if _WORKTREES.get(key) is checkout:
            del _WORKTREES[key]


def _key(path: Path) -> Path:
    return Path(os.path.realpath(path))


def checkout_of(root: Path) -> Checkout:
    return _WORKTREES.get(_key(root)) or Checkout.main(root)


@dataclass(frozen=True)
class Author:
    name: str
    email: str

    @classmethod
    def agent(cls, role: str) -> Author:
        return cls(f"Workflow Hub {role.upper()} agent", f"{role}-agent@workflow-hub.local")


def _git(root: Path, author: Author | None = None) -> SafeGit:
    checkout = checkout_of(root)
    return SafeGit(checkout, identity=(author.name, author.email)) if author else SafeGit(checkout)


async def git(root: Path, *args: str, stdin: str | None = None, check: bool = True) -> tuple[int, str]:
    """Run git in `root` (off the event loop); returns (exit code, stdout)."""

    def work() -> tuple[int, str]:
        g = _git(root)
        if check:
            return 0, g.run(*args, stdin=stdin)
        code, out, _ = g.status(*args)
        return code, out

    return await asyncio.to_thread(work)


async def ensure_repo(root: Path) -> None:
    """Workspaces are git repositories (seed: "Git tracks all changes"); make one if it is not yet."""

    def work() -> None:
        if _key(root) in _WORKTREES:
            return
        dot_git = root.absolute() / ".git"
        if dot_git.is_dir() and not dot_git.is_symlink():
            return
        if dot_git.exists() or dot_git.is_symlink():
            raise GitError(f"{dot_git} is not a directory; a workspace must hold its own repository")
        SafeGit(Checkout(root.absolute(), dot_git)).run("init", "-q")

    await asyncio.to_thread(work)


async def recent_log(root: Path, n: int = 10) -> str:
    code, out = await git(root, "log", "--oneline", f"-{n}", check=False)
    return out.strip() if code == 0 and out.strip() else "(no commits yet)"


async def tracked_files(root: Path) -> list[str]:
    code, out = await git(root, "ls-files", "-z", check=False)
    return [p for p in out.split("\0") if p] if code == 0 else []


async def find_job_commit(root: Path, key: str) -> str | None:
    """The sha of the commit with trailer `Workflow-Job: <key>` on HEAD's history, if any."""
    line = f"{TRAILER}: {key}"
    code, out = await git(
        root, "log", "--format=%H%x1f%B%x1e", "--fixed-strings", f"--grep={line}", check=False
    )
    if code != 0:  # no commits yet
        return None
    for record in out.split("\x1e"):
        sha, _, body = record.strip().partition("\x1f")
        # --grep matches anywhere; only an exact trailer line counts (key a/b/1 is not a/b/10).
        if sha and any(ln.strip() == line for ln in body.splitlines()):
            return sha
    return None


async def stage_commits(root: Path, project: str, task_key: str, stage: str) -> list[str]:
    """The shas (newest first) on HEAD's history that a job of this task's `stage` committed, any attempt."""
    prefix = f"{TRAILER}: {project}/{task_key}/{stage}/"
    code, out = await git(
        root, "log", "--format=%H%x1f%B%x1e", "--fixed-strings", f"--grep={prefix}", check=False
    )
    if code != 0:  # no commits yet
        return []
    shas = []
    for record in out.split("\x1e"):
        sha, _, body = record.strip().partition("\x1f")
        tail = (ln.strip().removeprefix(prefix) for ln in body.splitlines() if ln.strip().startswith(prefix))
        if sha and any(t.isdigit() for t in tail):  # an exact trailer: <prefix><attempt>
            shas.append(sha)
    return shas


async def commit_files(root: Path, sha: str) -> list[str]:
    # --no-renames: a file moved is both paths (the old one deleted), not only the new one.
    _, out = await git(
        root, "show", "--no-ext-diff", "--no-textconv", "--no-renames", "--name-only", "--format=", "-z", sha
    )
    return [p for p in out.split("\0") if p.strip()]


async def commit_body(root: Path, sha: str) -> str:
    _, out = await git(root, "log", "-1", "--format=%B", sha)
    return "\n".join(ln for ln in out.strip().splitlines() if not ln.startswith(f"{TRAILER}:")).strip()


async def show_file(root: Path, sha: str, path: str) -> str:
    _, out = await git(root, "show", "--no-textconv", f"{sha}:{path}")
    return out


async def changed_paths(root: Path, paths: list[str]) -> list[str]:
    """Those of `paths` that differ from HEAD (new or modified) and are not ignored."""
    if not paths:
        return []
    _, out = await git(
        root, "--literal-pathspecs", "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths
    )
    changed: list[str] = []
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        changed.append(entry[3:])
        if entry[0] in "RC":  # a rename is followed by its old path
            next(entries, None)
    return changed


def commit_message(subject: str, body: str, key: str) -> str:
    subject = " ".join(subject.split())
    if len(subject) > 72:
        subject = subject[:69].rstrip() + "..."
    body = body.strip()
    return f"{subject}\n\n{body}\n\n{TRAILER}: {key}\n" if body else f"{subject}\n\n{TRAILER}: {key}\n"


async def commit_job(
    root: Path, paths: list[str], *, subject: str, body: str, key: str, author: Author
) -> str | None:
    """Commit `paths` (only those) for job `key`; returns the sha, or None if nothing changed.

    If a commit for `key` already exists (a redelivered job), returns it instead of committing again.
    """
    if existing := await find_job_commit(root, key):
        return existing
    changed = await changed_paths(root, paths)
    if not changed:
        return None
    message = commit_message(subject, body, key)

    def work() -> str:
        g = _git(root, author)
        # Literal: a file an agent named `*` or `:(glob)**` is that file, not a pattern for every file.
        g.run("--literal-pathspecs", "add", "-A", "--", *changed)
        g.run("--literal-pathspecs", "commit", "-q", "--no-verify", "-F", "-", "--", *changed, stdin=message)
        return g.run("rev-parse", "HEAD").strip()

    return await asyncio.to_thread(work)
