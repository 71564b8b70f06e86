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

Errors: `GitError` (a command failed; the message names the command, the directory and git's own
message).
"""

from __future__ import annotations

import re
import tempfile
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

    def _program_keys(self) -> list[str]:
        code, out, _ = self._exec(
            ["config", "--list", "--includes", "--show-scope", "--name-only"], check=False, options=[]
        )
        if code != 0:
            return []
        keys = []
        for line in out.splitlines():
            scope, _, name = line.partition("\t")
            if scope in ("local", "worktree") and _RUNS_PROGRAM.match(name.lower()):
                keys.append(name)
        return sorted(set(keys))

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


def _subcommand(args: Sequence[str]) -> str:
    return next((a for a in args if not a.startswith("-")), "(no subcommand)")
