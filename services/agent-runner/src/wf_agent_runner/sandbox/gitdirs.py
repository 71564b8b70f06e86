"""The git metadata a sandbox shows read-only, so agents can run `git status`/`diff`/`log` but not
write the repository (hooks, config, refs: the runner commits on the host with hardened git).

A plain checkout has its `.git` directory inside the workspace: it is bound read-only over
`/workspace/.git`. A task's worktree has a `.git` *file* (`gitdir: <repo>/.git/worktrees/<name>`)
pointing outside the workspace, into the repository's common git directory: the file itself, the
worktree's git directory and the common directory are bound read-only where the pointers (absolute,
or relative to the workspace) lead inside the sandbox. Nothing else of the repository (its main
working tree, other worktrees) is shown.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from wf_agent_runner.sandbox.base import WORKDIR


@dataclass(frozen=True)
class ReadOnlyBind:
    host: Path
    inside: str


def _pointer(path: Path, prefix: str) -> str | None:
    """The path a git pointer file (`.git` with `gitdir: …`, `commondir`) names, or None."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if prefix:
        if not text.startswith(prefix):
            return None
        text = text[len(prefix) :].strip()
    return text or None


def git_binds(worktree: Path) -> list[ReadOnlyBind]:
    """What to bind read-only (host path, path inside the sandbox), parents before children."""
    dot_git = worktree / ".git"
    if dot_git.is_symlink():
        return []  # never follow a link the workspace controls out of it
    if dot_git.is_dir():
        return [ReadOnlyBind(dot_git, f"{WORKDIR}/.git")]
    if not dot_git.is_file():
        return []
    named = _pointer(dot_git, "gitdir:")
    if named is None:
        return []
    host_gitdir = Path(posixpath.normpath(posixpath.join(str(worktree), named)))
    inside_gitdir = named if posixpath.isabs(named) else posixpath.normpath(posixpath.join(WORKDIR, named))
    if not host_gitdir.is_dir():
        return []
    binds: list[ReadOnlyBind] = []
    common = _pointer(host_gitdir / "commondir", "")
    if common is not None:
        host_common = Path(posixpath.normpath(posixpath.join(str(host_gitdir), common)))
        inside_common = (
            common if posixpath.isabs(common) else posixpath.normpath(posixpath.join(inside_gitdir, common))
        )
        if host_common.is_dir() and _bindable(inside_common):
            binds.append(ReadOnlyBind(host_common, inside_common))
    if _bindable(inside_gitdir) and not any(
        inside_gitdir == b.inside or inside_gitdir.startswith(b.inside + "/") for b in binds
    ):
        binds.append(ReadOnlyBind(host_gitdir, inside_gitdir))
    binds.append(ReadOnlyBind(dot_git, f"{WORKDIR}/.git"))
    return binds


# Where a repository's git directory may not be shown: the sandbox's own system, workspace and HOME.
RESERVED = ("/bin", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin", "/sys", "/usr",
            WORKDIR, "/tmp/home")  # noqa: S108 - inside the sandbox  # fmt: skip


def _bindable(inside: str) -> bool:
    """A pointer that leads to the root, into the workspace or over the sandbox's system is not bound
    (git then says it is not a repository, which is safe)."""
    if inside.count("/") < 2 or not posixpath.isabs(inside):
        return False
    return not any(inside == r or inside.startswith(r + "/") for r in RESERVED)
