"""A task's branch and worktree: create, checkpoint, roll back, merge into the main branch, push,
remove. Blocking (git runs as a subprocess): async callers use `asyncio.to_thread`.

Who calls what (one writer per operation; docs/architecture.md, "Who owns which data"):
the agent runner creates worktrees and writes checkpoints before each job; the orchestrator lists
checkpoints, rolls back, merges at the deploy gate, pushes, and removes a finished task's worktree.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wf_common.gitops.layout import (
    CHECKPOINT_PREFIX,
    WORKTREES_SUBDIR,
    Checkpoint,
    checkpoint_ref,
    parse_checkpoint,
    task_branch,
)
from wf_common.gitops.safe import Checkout, GitError, SafeGit


class NoCheckpoint(GitError):
    """There is no checkpoint to roll back to."""


class MergeBlocked(GitError):
    """The merge cannot start (main checkout on another branch, or uncommitted changes in it)."""


@dataclass(frozen=True)
class MergeOutcome:
    kind: str  # fast-forward, merge, up-to-date, conflict
    into: str  # the main branch
    sha: str = ""
    conflicts: list[str] = field(default_factory=list)
    detail: str = ""


def main_branch(workspace: str | Path, configured: str | None = None, *, git: SafeGit | None = None) -> str:
    """The configured main branch, else the branch checked out in the project's main checkout
    (read with `git`, that checkout's SafeGit, when the caller has one: one git process fewer)."""
    if configured:
        return configured
    g = git or SafeGit(Checkout.main(workspace))
    code, out, _ = g.status("symbolic-ref", "--short", "-q", "HEAD")
    if code != 0 or not out.strip():
        raise GitError(
            f"{workspace} has no branch checked out (detached HEAD); check out the main branch "
            "or set git.main_branch in config.yaml"
        )
    return out.strip()


def _checked_out(g: SafeGit) -> str:
    """The branch checked out in `g`'s checkout ("" when HEAD is detached), from its HEAD file as git
    writes it (`ref: refs/heads/<name>`); anything else (a reftable repository's placeholder, a
    symlinked HEAD) is asked of git."""
    try:
        head = (g.checkout.git_dir / "HEAD").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        head = ""
    prefix = "ref: refs/heads/"
    name = head.strip()[len(prefix) :] if head.startswith(prefix) else ""
    if name and name != ".invalid" and not (g.checkout.git_dir / "HEAD").is_symlink():
        return name
    if re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", head.strip()):
        return ""  # detached
    code, out, _ = g.status("symbolic-ref", "--short", "-q", "HEAD")
    return out.strip() if code == 0 else ""


def _rev(g: SafeGit, rev: str) -> str | None:
    code, out, _ = g.status("rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
    return out.strip() if code == 0 and out.strip() else None


def _heads(g: SafeGit, *refs: str) -> dict[str, str]:
    """The commit each of `refs` (full branch names) points at, read with one git process. show-ref
    reads each ref directly (for-each-ref would walk every branch: one per task) and stops at the
    first missing one: the ones after it are left out too, and the caller reads them alone."""
    _, out, _ = g.status("show-ref", "--verify", *refs)
    found: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition(" ")
        if name in refs and sha:
            found[name] = sha
    return found


def _registered_gitdir(common: Path, path: Path) -> Path | None:
    """The linked worktree's git dir whose `gitdir` file (in the project's own .git) names `path`."""
    root = common / "worktrees"
    if not root.is_dir():
        return None
    want = str(path / ".git")
    for entry in sorted(root.iterdir()):
        try:
            if (entry / "gitdir").read_text(encoding="utf-8").strip() == want:
                return entry
        except OSError:
            continue
    return None


def find_worktree(workspace: str | Path, path: str | Path) -> Checkout | None:
    """The checkout of the worktree at `path`, if the project repository has it registered."""
    main = Checkout.main(workspace)
    path = Path(path).absolute()
    gitdir = _registered_gitdir(main.git_dir, path)
    if gitdir is None or not path.is_dir():
        return None
    return Checkout(path, gitdir)


def _exclude_worktrees(main: Checkout) -> None:
    """Keep default-layout worktrees out of the main checkout's `git status`."""
    exclude = main.git_dir / "info" / "exclude"
    line = f"/{WORKTREES_SUBDIR.as_posix()}/"
    try:
        text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
        if line not in text.splitlines():
            exclude.parent.mkdir(parents=True, exist_ok=True)
            with exclude.open("a", encoding="utf-8") as f:
                f.write(("" if not text or text.endswith("\n") else "\n") + line + "\n")
    except OSError as err:
        raise GitError(f"cannot write {exclude}: {err.strerror or err}") from None


# git's worktree commands are not safe against each other across processes: `worktree remove` and
# `prune` delete .git/worktrees when they leave it empty, and a `worktree add` running meanwhile fails
# ("could not create directory of …/worktrees/<KEY>", or "failed to read …/commondir" for an entry
# being removed). A runner makes the next task's worktree while the orchestrator removes a finished
# one's, so every change of the worktree list here holds this lock (a file lock on the repository's
# own .git: the processes share the machine's kernel, containers with the workspace mounted too).
# A git process of someone else's can still race an add: the first failure is tried again then.
_LOCK_FILE = "wf-worktrees.lock"
_LOST_RACE = "could not create directory of"
_ADD_TRIES = 5


@contextlib.contextmanager
def _worktree_list_locked(main: Checkout) -> Iterator[None]:
    path = main.common_dir / _LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise GitError(f"cannot open {path}: {err.strerror or err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def ensure_worktree(
    workspace: str | Path, task_key: str, path: str | Path, *, main: str | None = None
) -> Checkout:
    """The task's worktree at `path` on branch `wf/<KEY>`, made if missing. A new branch starts from
    the main branch as it is now (the task's first DEV job)."""
    path = Path(path).absolute()
    found = find_worktree(workspace, path)
    if found is not None:
        return found
    checkout = Checkout.main(workspace)
    g = SafeGit(checkout)
    if path.exists() and any(path.iterdir()):
        raise GitError(
            f"{path} exists but is not {task_key}'s worktree; move it away so the worktree can be made"
        )
    if path.parent == checkout.work_tree / WORKTREES_SUBDIR:
        _exclude_worktrees(checkout)
    branch = task_branch(task_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _worktree_list_locked(checkout):
        g.run("worktree", "prune")
        for attempt in range(1, _ADD_TRIES + 1):
            try:
                _add_worktree(g, workspace, branch, path, main)
                break
            except GitError as err:
                if attempt == _ADD_TRIES or _LOST_RACE not in str(err):
                    raise
    made = find_worktree(workspace, path)
    if made is None:
        raise GitError(f"git worktree add did not register {path}")
    return made


def _add_worktree(g: SafeGit, workspace: str | Path, branch: str, path: Path, main: str | None) -> None:
    if _rev(g, f"refs/heads/{branch}") is not None:  # also after a try that made the branch only
        g.run("worktree", "add", "-q", str(path), branch)
        return
    start = main_branch(workspace, main, git=g)
    if _rev(g, f"refs/heads/{start}") is None:
        raise GitError(f"{workspace} has no commit on {start!r} to start {branch} from; commit first")
    g.run("worktree", "add", "-q", "-b", branch, str(path), start)


def list_checkpoints(workspace: str | Path, task_key: str) -> list[Checkpoint]:
    g = SafeGit(Checkout.main(workspace))
    out = g.run(
        "for-each-ref",
        "--format=%(refname)%00%(objectname)%00%(committerdate:iso-strict)",
        f"{CHECKPOINT_PREFIX}{task_key}/",
    )
    found = []
    for line in out.splitlines():
        ref, sha, at = [*line.split("\0"), "", ""][:3]
        cp = parse_checkpoint(ref, sha, at)
        if cp is not None:
            found.append(cp)
    return sorted(found, key=lambda c: c.number)


def write_checkpoint(checkout: Checkout, task_key: str, stage: str) -> Checkpoint:
    """Record the branch's head before `stage` runs. A redelivered job (same stage, same head as the
    latest checkpoint) gets that checkpoint back instead of a new one."""
    g = SafeGit(checkout)
    head = _rev(g, "HEAD")
    if head is None:
        raise GitError(f"{checkout.work_tree} has no commit to checkpoint")
    existing = list_checkpoints(_main_root(checkout), task_key)
    if existing and existing[-1].stage == stage and existing[-1].sha == head:
        return existing[-1]
    n = existing[-1].number + 1 if existing else 1
    ref = checkpoint_ref(task_key, n, stage)
    g.run("update-ref", ref, head, "")  # "" as old value: fails if the ref exists (two writers)
    return next(c for c in list_checkpoints(_main_root(checkout), task_key) if c.ref == ref)


def _main_root(checkout: Checkout) -> Path:
    common = checkout.common_dir
    return common.parent


def _snapshot(g: SafeGit, head: str) -> str:
    """A commit of everything in the work tree (tracked, modified, untracked but not ignored), whose
    parent is HEAD, made through a temporary index: nothing in the checkout changes."""
    fd, index = tempfile.mkstemp(prefix="wf-index-")
    os.close(fd)
    try:
        env = {"GIT_INDEX_FILE": index}
        g.run("read-tree", head, env=env)
        g.run("add", "-A", env=env)
        tree = g.run("write-tree", env=env).strip()
        if tree == g.run("rev-parse", f"{head}^{{tree}}").strip():
            return head
        return g.run(
            "commit-tree", tree, "-p", head, "-m", "Work in progress saved before a rollback"
        ).strip()
    finally:
        Path(index).unlink(missing_ok=True)


def rollback(
    workspace: str | Path, task_key: str, to_stage: str, path: str | Path
) -> tuple[Checkpoint, Checkpoint]:
    """Reset `wf/<KEY>` to the latest checkpoint taken before `to_stage`; returns (that checkpoint, the
    `<n>-rollback` checkpoint that keeps what was there, uncommitted changes included)."""
    checkpoints = list_checkpoints(workspace, task_key)
    target = next((c for c in reversed(checkpoints) if c.stage == to_stage), None)
    if target is None:
        have = ", ".join(f"{c.number}-{c.stage}" for c in checkpoints) or "none"
        raise NoCheckpoint(f"{task_key} has no checkpoint before {to_stage} (checkpoints: {have})")
    branch = task_branch(task_key)
    wt = find_worktree(workspace, path)
    g = SafeGit(wt if wt is not None else Checkout.main(workspace))
    head = _rev(g, f"refs/heads/{branch}")
    if head is None:
        raise NoCheckpoint(f"{task_key} has no branch {branch} to roll back")
    saved_sha = _snapshot(g, head) if wt is not None else head
    n = checkpoints[-1].number + 1
    saved_ref = checkpoint_ref(task_key, n, "rollback")
    g.run("update-ref", saved_ref, saved_sha, "")
    if wt is not None:
        g.run("reset", "-q", "--hard", target.sha)
        g.run("clean", "-q", "-fd")  # untracked files are in the rollback checkpoint
    else:
        g.run("update-ref", f"refs/heads/{branch}", target.sha, head)
    saved = next(c for c in list_checkpoints(workspace, task_key) if c.ref == saved_ref)
    return target, saved


def merge_task(
    workspace: str | Path,
    task_key: str,
    *,
    title: str = "",
    main: str | None = None,
    missing_ok: bool = False,
) -> MergeOutcome | None:
    """Merge `wf/<KEY>` into the main branch in the main checkout: fast-forward when possible, else a
    merge commit. A conflict aborts the merge (nothing changes) and lists the conflicting paths. With
    `missing_ok`, a task without a branch gives None."""
    checkout = Checkout.main(workspace)
    g = SafeGit(checkout)
    branch = task_branch(task_key)
    current = _checked_out(g)
    target = main or current or main_branch(workspace, git=g)
    if current != target:
        raise MergeBlocked(
            f"{workspace} has {current or 'a detached HEAD'} checked out, not {target}; "
            f"check out {target} there and approve again"
        )
    main_ref, branch_ref = f"refs/heads/{target}", f"refs/heads/{branch}"
    heads = _heads(g, main_ref, branch_ref)  # one git process for both, when the main branch has a commit
    tip = heads.get(branch_ref) or (None if main_ref in heads else _rev(g, branch_ref))
    if tip is None:
        if missing_ok:
            return None
        raise MergeBlocked(f"{task_key} has no branch {branch} to merge")
    dirty = [
        ln for ln in g.run("status", "--porcelain=v1", "--untracked-files=no").splitlines() if ln.strip()
    ]
    if dirty:
        raise MergeBlocked(
            f"the main checkout {workspace} has uncommitted changes to tracked files "
            f"({', '.join(ln[3:] for ln in dirty[:5])}); commit or stash them and approve again"
        )
    before = heads.get(main_ref)  # None: an unborn branch (no commit yet)
    message = f"Merge {branch}" + (f": {title}" if title else "")
    # git itself finds the branch merged already, or to fast-forward to (LC_ALL=C: its words are
    # stable); a merge-base beforehand would be one process more for what the merge prints anyway.
    code, out, err = g.status("merge", "--no-edit", "-m", message, branch)
    if code == 0 and before is not None and re.match(r"Already up.to.date", out):
        return MergeOutcome("up-to-date", target, before)
    if code != 0:
        conflicts = [p for p in g.run("diff", "--name-only", "--diff-filter=U", "-z").split("\0") if p]
        g.status("merge", "--abort")
        detail = (out + err).strip()[-2000:]
        if conflicts:
            return MergeOutcome("conflict", target, before or "", conflicts, detail)
        raise GitError(f"merging {branch} into {target} failed: {detail}")
    if before is None or re.search(r"^Fast-forward", out, re.MULTILINE):  # HEAD is the branch's tip
        return MergeOutcome("fast-forward", target, tip)
    # A merge commit (also where a fast-forward was possible but merge.ff=false asked for one).
    return MergeOutcome("merge", target, _rev(g, "HEAD") or "")


def has_remote(workspace: str | Path, remote: str) -> bool:
    """Whether `git remote` would list `remote`: a `remote.<name>.*` key, or a legacy
    `.git/remotes/<name>` or `.git/branches/<name>` file (read from the configuration listing that
    SafeGit keeps, so no git process while the configuration is unchanged)."""
    checkout = Checkout.main(workspace)
    for _, name in SafeGit(checkout).config_names():
        section, _, rest = name.partition(".")
        if section == "remote" and rest.rpartition(".")[0] == remote:
            return True
    return any((checkout.common_dir / d / remote).is_file() for d in ("remotes", "branches"))


def push(workspace: str | Path, remote: str, branch: str) -> None:
    g = SafeGit(Checkout.main(workspace))
    g.run("push", "--porcelain", remote, f"refs/heads/{branch}:refs/heads/{branch}")


def remove_worktree(
    workspace: str | Path, task_key: str, path: str | Path, *, main: str | None = None
) -> str | None:
    """Remove a finished task's worktree if its branch is merged into the main branch and nothing in
    it is uncommitted. Returns why it was kept, or None when removed (or already gone)."""
    wt = find_worktree(workspace, path)
    if wt is None:
        return None
    g = SafeGit(Checkout.main(workspace))
    target = main_branch(workspace, main, git=g)
    branch = f"refs/heads/{task_branch(task_key)}"
    # Not 0 also when the branch is gone (128): then nothing says its work is on the main branch.
    if g.status("merge-base", "--is-ancestor", branch, f"refs/heads/{target}")[0] != 0:
        return f"{task_branch(task_key)} is not merged into {target}"
    # git refuses (without --force) a worktree with modified or untracked files: that is the check.
    with _worktree_list_locked(g.checkout):
        code, out, err = g.status("worktree", "remove", str(wt.work_tree))
    if code != 0:
        if "modified or untracked files" in err:
            return f"{wt.work_tree} has uncommitted changes"
        raise GitError(f"git worktree remove {wt.work_tree} failed: {(out + err).strip()[-500:]}")
    return None


def merge_main_into_task(
    workspace: str | Path, task_key: str, path: str | Path, *, main: str | None = None
) -> str:
    """After a conflict at the deploy merge: merge the main branch into the task's branch in its
    worktree and commit the result with git's conflict markers in the conflicting files, so the DEV
    agent sees both sides and resolves them. Returns the new commit (or the head when nothing to do)."""
    target = main_branch(workspace, main)
    wt = ensure_worktree(workspace, task_key, path, main=main)
    g = SafeGit(wt)
    code, out, err = g.status(
        "merge", "--no-edit", "--no-ff", "-m", f"Merge {target} into {task_branch(task_key)}", target
    )
    if code != 0:
        conflicts = [p for p in g.run("diff", "--name-only", "--diff-filter=U", "-z").split("\0") if p]
        if not conflicts:
            g.status("merge", "--abort")
            raise GitError(
                f"merging {target} into {task_branch(task_key)} failed: {(out + err).strip()[-1500:]}"
            )
        g.run("add", "-A", "--", *conflicts)
        g.run(
            "commit",
            "-q",
            "--no-verify",
            "-m",
            f"Merge {target} into {task_branch(task_key)}: conflicts left for DEV in {', '.join(conflicts)}",
        )
    return g.run("rev-parse", "HEAD").strip()
