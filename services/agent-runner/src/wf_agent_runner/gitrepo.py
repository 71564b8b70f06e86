"""The git operations agents need, run as `git` subprocesses in the workspace.

Commits made for a job carry a `Workflow-Job: <idempotency key>` trailer. A redelivered job looks
for that trailer first, so the same work is never committed twice.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT = 120.0
TRAILER = "Workflow-Job"


class GitError(Exception):
    pass


@dataclass(frozen=True)
class Author:
    name: str
    email: str

    @classmethod
    def agent(cls, role: str) -> Author:
        return cls(f"Workflow Hub {role.upper()} agent", f"{role}-agent@workflow-hub.local")


async def git(root: Path, *args: str, stdin: str | None = None, check: bool = True) -> tuple[int, str]:
    """Run git in `root`; returns (exit code, stdout). With check, a non-zero exit raises GitError."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    proc = await asyncio.create_subprocess_exec(
        "git",
        "-c",
        "core.quotepath=off",
        "-c",
        "core.hooksPath=/dev/null",  # no hook planted in the workspace runs on the host
        *args,
        cwd=root,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), GIT_TIMEOUT
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise GitError(f"git {_subcommand(args)} in {root} did not finish within {GIT_TIMEOUT:g}s") from None
    code = proc.returncode or 0
    if check and code != 0:
        detail = (err or out).decode(errors="replace").strip()
        raise GitError(f"git {_subcommand(args)} failed in {root} (exit {code}): {detail[-1500:]}")
    return code, out.decode(errors="replace")


def _subcommand(args: tuple[str, ...]) -> str:
    """The subcommand, for messages: skips `-c name=value` options."""
    for i, a in enumerate(args):
        if not a.startswith("-") and (i == 0 or args[i - 1] != "-c"):
            return a
    return "(no subcommand)"


async def ensure_repo(root: Path) -> None:
    """Workspaces are git repositories (seed: "Git tracks all changes"); make one if it is not yet."""
    code, _ = await git(root, "rev-parse", "--git-dir", check=False)
    if code != 0:
        await git(root, "init", "-q")


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


async def commit_files(root: Path, sha: str) -> list[str]:
    _, out = await git(root, "show", "--name-only", "--format=", "-z", sha)
    return [p for p in out.split("\0") if p.strip()]


async def commit_body(root: Path, sha: str) -> str:
    _, out = await git(root, "log", "-1", "--format=%B", sha)
    return "\n".join(ln for ln in out.strip().splitlines() if not ln.startswith(f"{TRAILER}:")).strip()


async def show_file(root: Path, sha: str, path: str) -> str:
    _, out = await git(root, "show", f"{sha}:{path}")
    return out


async def changed_paths(root: Path, paths: list[str]) -> list[str]:
    """Those of `paths` that differ from HEAD (new or modified) and are not ignored."""
    if not paths:
        return []
    _, out = await git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths)
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
    await git(root, "add", "-A", "--", *changed)
    await git(
        root,
        "-c",
        f"user.name={author.name}",
        "-c",
        f"user.email={author.email}",
        "-c",
        "commit.gpgsign=false",
        "commit",
        "-q",
        "-F",
        "-",
        "--",
        *changed,
        stdin=commit_message(subject, body, key),
    )
    _, sha = await git(root, "rev-parse", "HEAD")
    return sha.strip()
