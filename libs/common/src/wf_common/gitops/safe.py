"""Git, through GitPython, hardened against the repository it works on.

Agents write the files of a workspace, and without a sandbox (or through a `.git` file planted in a
task's worktree) they could write its git configuration and hooks too. Every git command the
services run therefore:

- names the repository explicitly (`GIT_DIR`, `GIT_WORK_TREE`, computed from the project's own
  `.git`, never from a `.git` file inside a work tree, which an agent can rewrite);
- disables hooks (`core.hooksPath=/dev/null`), the fsmonitor, pagers, editors, signing and the `ext::`
  transport on the command line, which beats every configuration file;
- neutralises every program-running key found in the repository's own configuration (filters, diff
  textconv/command, merge drivers, ssh/askpass/proxy commands, credential helpers, signing programs):
  each is overridden with an empty value on the command line. The user's global configuration is
  trusted (the workspace cannot write it), so a git-lfs filter or an ssh command set there still works.
  The keys come from `git config --list`, kept per git directory while none of the files it reads
  changed (`_ConfigListings`: inode, size, mtime and ctime of each, taken before the listing), so a
  key planted at any time is seen by the next command and an unchanged configuration costs no process.

Errors: `GitError` (a command failed; the message names the command, the directory and git's own
message).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import git as gitpython
from git.exc import GitCommandError, GitCommandNotFound

GIT_TIMEOUT = 120.0

# Set on every command, whatever any configuration file says.
ALWAYS: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.pager", "cat"),
    ("core.editor", "true"),
    ("sequence.editor", "true"),
    ("core.quotePath", "off"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("protocol.ext.allow", "never"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("advice.detachedHead", "false"),
)
# Repository-level keys that make git run a program; overridden with "" when the repository sets them.
_RUNS_PROGRAM = re.compile(
    r"^(filter\..+\.(clean|smudge|process)|diff\..+\.(textconv|command)|diff\.external"
    r"|merge\..+\.driver|core\.(sshcommand|askpass|gitproxy|alternaterefscommand|fsmonitor|hookspath"
    r"|editor|pager)|credential\.(.+\.)?helper|gpg\.(.+\.)?program|uploadpack\.packobjectshook"
    r"|sequence\.editor|pager\..+)$"
)
_IDENTITY = ("Workflow Hub", "workflow-hub@localhost")


class GitError(Exception):
    """A git command failed or could not run."""


@dataclass(frozen=True)
class Checkout:
    """A work tree and the git directory that belongs to it (both absolute).

    `git_dir` is `<repo>/.git` for the project's main checkout and `<repo>/.git/worktrees/<name>` for a
    task's worktree; it always comes from the project repository, never from the work tree.
    """

    work_tree: Path
    git_dir: Path

    @classmethod
    def main(cls, root: str | Path) -> Checkout:
        """The checkout of a repository whose `.git` is a directory in `root`."""
        path = Path(root).absolute()
        dot_git = path / ".git"
        if dot_git.is_symlink() or not dot_git.is_dir():
            raise GitError(
                f"{path} is not the root of a git repository with its own .git directory "
                "(a .git file or link is not trusted); `wf project create` makes one"
            )
        return cls(path, dot_git)

    @property
    def common_dir(self) -> Path:
        """The repository's own `.git` (for a linked worktree: the main one's)."""
        if self.git_dir.parent.name == "worktrees":
            return self.git_dir.parent.parent
        return self.git_dir


def _environment(c: Checkout) -> dict[str, str]:
    # GitPython adds these to the process environment.
    return {
        "GIT_DIR": str(c.git_dir),
        "GIT_WORK_TREE": str(c.work_tree),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",
        "LC_ALL": "C",
    }


class SafeGit:
    """Runs git commands in one checkout with the hardening above. Blocking: call it from a thread
    (`asyncio.to_thread`) in async code."""

    def __init__(self, checkout: Checkout, *, identity: tuple[str, str] = _IDENTITY) -> None:
        self.checkout = checkout
        self.identity = identity
        self._git = gitpython.Git(str(checkout.work_tree))
        self._overrides: list[str] | None = None

    def _options(self) -> list[str]:
        if self._overrides is None:
            # Read once per SafeGit: a new one is made per operation, so a key planted later is seen.
            self._overrides = [f"{k}=" for k in self._program_keys()]
        opts = [f"{k}={v}" for k, v in ALWAYS] + self._overrides
        name, email = self.identity
        opts += [f"user.name={name}", f"user.email={email}"]
        return [arg for o in opts for arg in ("-c", o)]

    def config_names(self) -> tuple[tuple[str, str], ...]:
        """Every configured key as (scope, name), read through `_LISTINGS` (a git process only when a
        configuration file changed since the last read)."""
        return _LISTINGS.names(self)

    def _program_keys(self) -> list[str]:
        keys = {
            name
            for scope, name in self.config_names()
            if scope in ("local", "worktree") and _RUNS_PROGRAM.match(name.lower())
        }
        return sorted(keys)

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, env: dict[str, str] | None = None
    ) -> str:
        """git `args`; returns stdout (unstripped). With check, a non-zero exit raises GitError."""
        _, out, _ = self._exec(list(args), stdin=stdin, check=check, env=env)
        return out

    def status(self, *args: str) -> tuple[int, str, str]:
        """git `args` without raising: (exit code, stdout, stderr)."""
        return self._exec(list(args), check=False)

    def _exec(
        self,
        args: list[str],
        *,
        stdin: str | None = None,
        check: bool = True,
        options: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> tuple[int, str, str]:
        opts = self._options() if options is None else list(options)
        command = ["git", *opts, *args]
        with tempfile.TemporaryFile() as input_file:
            if stdin is not None:
                input_file.write(stdin.encode())
                input_file.seek(0)
            try:
                code, out, err = self._git.execute(
                    command,
                    istream=input_file if stdin is not None else None,
                    with_extended_output=True,
                    with_exceptions=False,
                    kill_after_timeout=GIT_TIMEOUT,
                    strip_newline_in_stdout=False,
                    env={**_environment(self.checkout), **(env or {})},
                    universal_newlines=False,
                )
            except GitCommandNotFound:
                raise GitError("git is not installed on this machine; install git") from None
            except GitCommandError as err_:  # raised for a timeout even without with_exceptions
                raise GitError(f"git {_subcommand(args)} in {self.checkout.work_tree}: {err_}") from None
        text_out = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
        text_err = err.decode(errors="replace") if isinstance(err, bytes) else str(err)
        if check and code != 0:
            detail = (text_err or text_out).strip()
            raise GitError(
                f"git {_subcommand(args)} failed in {self.checkout.work_tree} (exit {code}): {detail[-1500:]}"
            )
        return int(code or 0), text_out, text_err


class _ConfigListings:
    """`git config --list` of each git directory, kept while none of the files it can come from
    changed. The fingerprint is taken before the listing is read (a change made while git reads is
    seen next time) and covers every file git would read, present or not: the repository's config and
    config.worktree, the global and system files, and the environment that names them. A listing
    with an include (its files and conditions are not all covered) or a key from anything but a
    file is read again every time, as before."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[Path, tuple[tuple[object, ...], tuple[tuple[str, str], ...]]] = {}
        self.reads = 0  # git processes run for a listing (tests)

    def names(self, g: SafeGit) -> tuple[tuple[str, str], ...]:
        c = g.checkout
        files = _candidates(c)
        fingerprint = _fingerprint(files)
        with self._lock:
            kept = self._kept.get(c.git_dir)
        if kept is not None and kept[0] == fingerprint:
            return kept[1]
        self.reads += 1
        code, out, _ = g._exec(
            ["config", "--list", "--includes", "--show-scope", "--show-origin", "--name-only", "-z"],
            check=False,
            options=[],
        )
        if code != 0:
            return ()
        fields = out.split("\0")
        rows = [tuple(fields[i : i + 3]) for i in range(0, len(fields) - 2, 3)]
        names = tuple((scope, name) for scope, _, name in rows)
        known = {str(p) for p in files}
        cacheable = all(
            origin.startswith("file:")
            and _absolute(c, origin[5:]) in known
            and not name.startswith("include")  # include.path, includeif.*.path
            for _, origin, name in rows
        )
        with self._lock:
            if cacheable:
                self._kept[c.git_dir] = (fingerprint, names)
            else:
                self._kept.pop(c.git_dir, None)
        return names


def _candidates(c: Checkout) -> list[Path]:
    env = os.environ
    home = Path(env.get("HOME") or Path.home())
    xdg = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    files = [c.common_dir / "config", c.git_dir / "config.worktree"]
    files += [home / ".gitconfig", xdg / "git" / "config"]
    files += [Path(env[k]) for k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM") if env.get(k)]
    files.append(Path("/etc/gitconfig"))
    return files


def _fingerprint(files: list[Path]) -> tuple[object, ...]:
    env = tuple(os.environ.get(k) for k in _CONFIG_ENVIRONMENT)
    stats: list[object] = [env]
    for f in files:
        try:
            st = f.stat()
        except OSError:
            stats.append(None)
            continue
        stats.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(stats)


def _absolute(c: Checkout, origin: str) -> str:
    path = Path(origin)
    return str(path if path.is_absolute() else c.work_tree / path)


# Environment variables that change which configuration git reads.
_CONFIG_ENVIRONMENT = (
    "HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG",
)  # fmt: skip
_LISTINGS = _ConfigListings()


def _subcommand(args: Sequence[str]) -> str:
    return next((a for a in args if not a.startswith("-")), "(no subcommand)")
