"""The git side of task branches on real repositories: nothing is removed or overwritten silently."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
from wf_common.gitops import tasks as gtasks
from wf_common.gitops.layout import worktree_path
from wf_common.gitops.safe import GitError

from tests.runner.helpers import git, make_repo


def _task(repo: Path, key: str = "T-002") -> Path:
    path = worktree_path(repo, "p", key, None)
    gtasks.ensure_worktree(repo, key, path)
    return path


def test_a_redelivered_job_reuses_its_checkpoint(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    checkout = gtasks.ensure_worktree(repo, "T-002", _task(repo))
    first = gtasks.write_checkpoint(checkout, "T-002", "dev")
    again = gtasks.write_checkpoint(checkout, "T-002", "dev")
    qa = gtasks.write_checkpoint(checkout, "T-002", "qa")
    assert again == first
    assert [(c.number, c.stage) for c in gtasks.list_checkpoints(repo, "T-002")] == [(1, "dev"), (2, "qa")]
    assert qa.sha == first.sha == git(repo, "rev-parse", "HEAD")


def test_an_unmerged_or_dirty_worktree_is_kept(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    path = _task(repo)
    (path / "b.txt").write_text("b\n", encoding="utf-8")
    git(path, "add", "b.txt")
    git(path, "commit", "-q", "-m", "work")

    assert gtasks.remove_worktree(repo, "T-002", path) == "wf/T-002 is not merged into main"
    git(repo, "merge", "-q", "--ff-only", "wf/T-002")
    (path / "notes.txt").write_text("not committed\n", encoding="utf-8")
    assert "uncommitted changes" in (gtasks.remove_worktree(repo, "T-002", path) or "")
    assert path.is_dir()

    (path / "notes.txt").unlink()
    assert gtasks.remove_worktree(repo, "T-002", path) is None
    assert not path.exists()
    assert git(repo, "branch", "--list", "wf/T-002")  # the branch stays


def test_a_merge_into_a_dirty_main_checkout_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    path = _task(repo)
    (path / "a.txt").write_text("from the task\n", encoding="utf-8")
    git(path, "commit", "-q", "-am", "task work")
    (repo / "a.txt").write_text("the human's edit\n", encoding="utf-8")
    before = git(repo, "rev-parse", "main")

    with pytest.raises(gtasks.MergeBlocked, match=r"uncommitted changes to tracked files \(a\.txt\)"):
        gtasks.merge_task(repo, "T-002")

    assert git(repo, "rev-parse", "main") == before
    assert (repo / "a.txt").read_text() == "the human's edit\n"


def _commit(path: Path, name: str, text: str) -> None:
    (path / name).write_text(text, encoding="utf-8")
    git(path, "add", name)
    git(path, "commit", "-q", "-m", f"add {name}")


def test_a_merge_reports_what_it_did_and_the_commit_the_main_branch_is_at(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    path = _task(repo)
    assert gtasks.merge_task(repo, "T-002") == gtasks.MergeOutcome(
        "up-to-date", "main", git(repo, "rev-parse", "main")
    )
    assert gtasks.merge_task(repo, "T-404", missing_ok=True) is None

    _commit(path, "b.txt", "b\n")
    ff = gtasks.merge_task(repo, "T-002")
    assert ff is not None
    assert (ff.kind, ff.sha) == ("fast-forward", git(path, "rev-parse", "HEAD"))
    assert git(repo, "rev-parse", "main") == ff.sha

    _commit(path, "c.txt", "c\n")
    _commit(repo, "d.txt", "d\n")  # the main branch moved on too: a merge commit
    merged = gtasks.merge_task(repo, "T-002", title="Add c")
    assert merged is not None
    assert (merged.kind, merged.sha) == ("merge", git(repo, "rev-parse", "main"))
    assert git(repo, "log", "-1", "--format=%P", "main").split() == [
        git(repo, "rev-parse", "main~1"),  # the main branch's own commit, then the task's
        git(path, "rev-parse", "HEAD"),
    ]
    assert git(repo, "log", "-1", "--format=%s", "main") == "Merge wf/T-002: Add c"


def test_a_fast_forward_that_git_is_told_not_to_do_reports_the_merge_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    path = _task(repo)
    git(repo, "config", "merge.ff", "false")  # the user's own setting
    _commit(path, "b.txt", "b\n")

    outcome = gtasks.merge_task(repo, "T-002")

    assert outcome is not None
    assert outcome.kind == "merge"
    assert outcome.sha == git(repo, "rev-parse", "main") != git(path, "rev-parse", "HEAD")


def test_a_directory_in_the_way_of_a_worktree_is_not_overwritten(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    path = worktree_path(repo, "p", "T-002", None)
    path.mkdir(parents=True)
    (path / "precious.txt").write_text("keep me\n", encoding="utf-8")
    with pytest.raises(GitError, match="move it away"):
        gtasks.ensure_worktree(repo, "T-002", path)
    assert (path / "precious.txt").read_text() == "keep me\n"


def test_worktrees_are_made_while_another_process_removes_others(tmp_path: Path) -> None:
    """A runner makes the next task's worktree while the orchestrator removes a finished task's. git's
    worktree commands race each other: `worktree remove` deletes .git/worktrees when it leaves it
    empty, and an add meanwhile fails ("could not create directory of …/worktrees/<KEY>", "failed to
    read …/commondir"); a chain of tasks in `make bench` stopped on it. Every worktree must be made."""
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    stop = threading.Event()
    removed = 0
    failed: list[str] = []

    def orchestrator() -> None:  # finished tasks' worktrees made and removed, over and over
        nonlocal removed
        for i in itertools.count(500):
            if stop.is_set():
                return
            try:
                path = _task(repo, f"T-{i}")
                kept = gtasks.remove_worktree(repo, f"T-{i}", path)
            except GitError as err:
                failed.append(str(err))
                return
            if kept is not None:
                failed.append(kept)
                return
            removed += 1

    other = threading.Thread(target=orchestrator)
    other.start()
    try:
        for n in range(2, 152):
            key = f"T-{n:03d}"
            path = _task(repo, key)
            assert git(path, "branch", "--show-current") == f"wf/{key}"
            assert gtasks.remove_worktree(repo, key, path) is None  # the .git/worktrees dir empties again
    finally:
        stop.set()
        other.join()
    assert failed == []
    assert removed > 0
    assert not (repo / ".git" / "worktrees").exists() or not any((repo / ".git" / "worktrees").iterdir())
