"""Project workspaces: a directory under git, with `.workflow/` for the agents' logs and checkpoints."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from wf_common.errors import CommandError
from wf_common.workspaces import home_problem, workspace_problem

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


async def check(workspace: str, taken: Mapping[str, str]) -> str:
    """The workspace as it will be stored, once every rule holds; refuses with the reason otherwise.

    `taken` maps the other projects' workspaces to their slugs. Nothing is created on disk here.
    The command model already applied wf_common.workspaces' rules to the text; these are the ones that
    depend on this machine: the home directory, where symbolic links lead, and the other projects.
    """
    wrong = workspace_problem(workspace)
    if wrong:  # a command that did not come through the model (it cannot happen through the API)
        raise CommandError("invalid", f"workspace: {wrong}")
    path = workspace.rstrip("/")
    real = await asyncio.to_thread(os.path.realpath, path)
    home = await asyncio.to_thread(os.path.expanduser, "~")
    for candidate in dict.fromkeys((path, real)):
        wrong = home_problem(candidate, home) or workspace_problem(candidate)
        if wrong:
            where = "" if candidate == path else f" ({path} leads to {real})"
            raise CommandError("conflict", f"workspace: {wrong}{where}")
    for other, slug in taken.items():
        if other in (path, real) or await asyncio.to_thread(os.path.realpath, other) == real:
            raise CommandError(
                "conflict",
                f"workspace: {path} is already the workspace of project {slug!r}; two projects on one "
                "directory would have their agents write over each other, so choose another directory",
            )
    exists_as_other = await asyncio.to_thread(lambda: os.path.lexists(path) and not os.path.isdir(path))
    if exists_as_other:
        raise CommandError("conflict", f"workspace: {path} exists and is not a directory")
    return path


async def prepare(path: str) -> None:
    """Make the checked, absolute `path` a directory holding a git repository.

    A new repository gets one commit adding `.workflow/.gitignore` (agent logs and checkpoints stay
    out of git); an existing repository is left as it is, apart from creating that file if missing.
    """
    directory, is_repo = await asyncio.to_thread(_make_directory, path)
    if not is_repo:
        await _git(directory, "init", "-q")
        await _git(directory, "add", ".workflow/.gitignore")
        await _git(directory, "commit", "-q", "-m", "Initialize Workflow Hub workspace")


def _make_directory(workspace: str) -> tuple[Path, bool]:
    path = Path(workspace)
    try:
        path.mkdir(parents=True, exist_ok=True)
        ignore = path / ".workflow" / ".gitignore"
        ignore.parent.mkdir(exist_ok=True)
        if not ignore.exists():
            ignore.write_text(GITIGNORE, encoding="utf-8")
    except OSError as err:
        # The text was fine; this machine's disk refused (permissions, a file in the way, read-only).
        raise CommandError("conflict", f"cannot create workspace {path}: {err.strerror or err}") from None
    return path, (path / ".git").exists()
