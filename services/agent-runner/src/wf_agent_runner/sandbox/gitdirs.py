"""The git metadata a sandbox shows read-only, so agents can run `git status`/`diff`/`log` but not
write the repository (hooks, config, refs: the runner commits on the host with hardened git).

A plain checkout has its `.git` directory inside the workspace: it is bound read-only over
`/workspace/.git`. A task's worktree has a `.git` *file* (`gitdir: <repo>/.git/worktrees/<name>`)
pointing outside the workspace, into the repository's common git directory: the file itself, the
worktree's git directory and the common directory are bound read-only where the pointers (absolute,
or relative to the workspace) lead inside the sandbox. Nothing else of the repository (its main
working tree, other worktrees) is shown.

The configuration files of those git directories (`config`, `config.worktree`, a submodule's
`modules/<name>/config`) are not shown as they are: they may hold secrets (a remote URL with a token,
`http.extraHeader`, credential settings, the user's identity). `GitView` binds a copy of each over it,
with only the keys read-only git needs to read the repository (`SAFE_KEYS`, `extensions.*`).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
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


# What git needs of a repository's configuration to read it: its format, layout and the worktree
# settings. Everything else stays on the host.
SAFE_KEYS = frozenset({
    "core.repositoryformatversion", "core.bare", "core.filemode", "core.symlinks", "core.ignorecase",
    "core.precomposeunicode", "core.logallrefupdates", "core.sparsecheckout", "core.sparsecheckoutcone",
})  # fmt: skip
SAFE_SECTIONS = ("extensions.",)
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._-]{1,64}")
CONFIG_NAMES = ("config", "config.worktree")
# Where no configuration file lives: not walked (a repository's objects can be many files).
_NOT_WALKED = frozenset({"objects", "refs", "logs", "hooks", "lfs", "info"})
_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}


def config_files(gitdir: Path) -> list[Path]:
    """The configuration files in a git directory: its own, its worktrees' and its submodules'."""
    found: list[Path] = []
    for root, dirs, files in os.walk(gitdir):
        dirs[:] = [d for d in dirs if d not in _NOT_WALKED]
        for name in files:
            path = Path(root) / name
            if name in CONFIG_NAMES and path.is_file() and not path.is_symlink():
                found.append(path)
    return sorted(found)


def safe_config(path: Path) -> str:
    """The keys of git configuration file `path` a sandbox may see, as a git configuration file.
    Read with `--no-includes`: an include cannot pull another file in."""
    try:
        listed = subprocess.run(  # noqa: S603 - fixed arguments; reading a file runs nothing
            ["git", "config", "--file", str(path), "--no-includes", "--null", "--list"],  # noqa: S607
            capture_output=True,
            check=True,
            timeout=30,
            env={**os.environ, **_GIT_ENV},
        ).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return ""  # unreadable or malformed: git in the sandbox finds no repository, which is safe
    sections: dict[str, list[str]] = {}
    for entry in listed.split("\0"):
        key, _, value = entry.partition("\n")
        if not (key in SAFE_KEYS or key.startswith(SAFE_SECTIONS)) or not _SAFE_VALUE.fullmatch(value):
            continue
        section, _, name = key.rpartition(".")
        if "." in section or not name.isidentifier():
            continue  # no subsections are needed
        sections.setdefault(section, []).append(f"\t{name} = {value}")
    return "".join(f"[{section}]\n" + "\n".join(lines) + "\n" for section, lines in sections.items())


class GitView:
    """What one sandbox shows of its worktree's git data: `git_binds`, each configuration file under
    them replaced by its `safe_config` copy (made on first use, in a private directory; `close()`
    removes it)."""

    def __init__(self, worktree: Path) -> None:
        self.worktree = worktree
        self._binds: list[ReadOnlyBind] | None = None
        self._scratch: Path | None = None

    def binds(self) -> list[ReadOnlyBind]:
        if self._binds is None:
            binds = git_binds(self.worktree)
            self._binds = [*binds, *self._safe_configs(binds)]
        return self._binds

    def _safe_configs(self, binds: list[ReadOnlyBind]) -> list[ReadOnlyBind]:
        masks: list[ReadOnlyBind] = []
        for bind in binds:
            if bind.host.is_symlink() or not bind.host.is_dir():
                continue
            for path in config_files(bind.host):
                if self._scratch is None:
                    self._scratch = Path(tempfile.mkdtemp(prefix="wf-sandbox-git-"))
                copy = self._scratch / f"{len(masks)}-{path.name}"
                copy.write_text(safe_config(path), encoding="utf-8")
                copy.chmod(0o644)  # the sandbox's user reads it (the directory stays 0700)
                inside = posixpath.join(bind.inside, path.relative_to(bind.host).as_posix())
                masks.append(ReadOnlyBind(copy, inside))
        return masks

    def close(self) -> None:
        if self._scratch is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self._scratch)
            self._scratch = None
        self._binds = None
