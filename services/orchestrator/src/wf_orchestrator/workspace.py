"""Project workspaces: a directory under git, with `.workflow/` for the agents' logs and checkpoints."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from wf_common.errors import CommandError

GITIGNORE = "agent_logs/\ncheckpoints/\nworktrees/\n"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Workflow Hub",
    "GIT_AUTHOR_EMAIL": "workflow-hub@localhost",
    "GIT_COMMITTER_NAME": "Workflow Hub",
    "GIT_COMMITTER_EMAIL": "workflow-hub@localhost",
}


async def _git(path: Path, *args: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            "git", "-c", "commit.gpgsign=false", *args,
            cwd=path, env={**os.environ, **_IDENTITY}, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    except FileNotFoundError:
        raise CommandError(
            "unavailable", "git is not installed on the orchestrator's machine; install git"
        ) from None
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise CommandError(
            "invalid", f"git {' '.join(args)} failed in {path}: {out.decode(errors='replace').strip()}"
        )


async def prepare(workspace: str) -> str:
    """Make `workspace` an absolute directory holding a git repository; returns the absolute path.

    A new repository gets one commit adding `.workflow/.gitignore` (agent logs and checkpoints stay
    out of git); an existing repository is left as it is, apart from creating that file if missing.
    """
    path, is_repo = await asyncio.to_thread(_make_directory, workspace)
    if not is_repo:
        await _git(path, "init", "-q")
        await _git(path, "add", ".workflow/.gitignore")
        await _git(path, "commit", "-q", "-m", "Initialize Workflow Hub workspace")
    return str(path)


def _make_directory(workspace: str) -> tuple[Path, bool]:
    path = Path(workspace).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise CommandError("invalid", f"workspace {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        ignore = path / ".workflow" / ".gitignore"
        ignore.parent.mkdir(exist_ok=True)
        if not ignore.exists():
            ignore.write_text(GITIGNORE, encoding="utf-8")
    except OSError as err:
        raise CommandError("invalid", f"cannot create workspace {path}: {err.strerror or err}") from None
    return path, (path / ".git").exists()
