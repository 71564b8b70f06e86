"""Git run by the services ignores what a workspace (or an agent in it) plants: hooks, a hooksPath,
an fsmonitor, filters, and a worktree `.git` file pointing at a crafted repository."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from wf_agent_runner import gitrepo
from wf_common.gitops import safe
from wf_common.gitops import tasks as gtasks
from wf_common.gitops.layout import worktree_path

from tests.runner.helpers import git, make_repo

AUTHOR = gitrepo.Author.agent("dev")


def _script(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\ntouch {marker}\ncat\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _plant_hooks(hooks: Path, marker: Path) -> None:
    for name in ("pre-commit", "commit-msg", "post-commit", "prepare-commit-msg", "post-checkout"):
        _script(hooks / name, marker)


async def _agent_commit(root: Path, rel: str, text: str, key: str) -> str | None:
    (root / rel).write_text(text, encoding="utf-8")
    return await gitrepo.commit_job(root, [rel], subject="T-002: change", body="", key=key, author=AUTHOR)


async def test_a_planted_hook_does_not_run_on_the_runners_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    marker = tmp_path / "hook-ran"
    _plant_hooks(repo / ".git" / "hooks", marker)
    # And a hooksPath in the repository's config pointing at more of them.
    _plant_hooks(tmp_path / "evil-hooks", marker)
    git(repo, "config", "core.hooksPath", str(tmp_path / "evil-hooks"))

    sha = await _agent_commit(repo, "a.txt", "changed\n", "p/T-002/dev/1")

    assert sha is not None
    assert git(repo, "log", "-1", "--format=%H") == sha
    assert not marker.exists()


async def test_a_planted_fsmonitor_and_filter_do_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    fsmonitor, clean = tmp_path / "fsmonitor-ran", tmp_path / "filter-ran"
    git(repo, "config", "core.fsmonitor", str(_script(tmp_path / "fsm.sh", fsmonitor)))
    git(repo, "config", "filter.evil.clean", f"sh -c 'touch {clean}; echo REPLACED'")
    git(repo, "config", "filter.evil.process", str(_script(tmp_path / "proc.sh", clean)))
    (repo / ".gitattributes").write_text("*.txt filter=evil\n", encoding="utf-8")

    sha = await _agent_commit(repo, "a.txt", "the agent's text\n", "p/T-002/dev/1")

    assert sha is not None
    assert git(repo, "show", f"{sha}:a.txt") == "the agent's text"  # not what the filter would store
    assert not fsmonitor.exists()
    assert not clean.exists()


async def test_a_rewritten_worktree_git_file_is_not_followed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    checkout = gtasks.ensure_worktree(repo, "T-002", worktree_path(repo, "p", "T-002", None))
    # The agent replaces the worktree's .git file with one naming a repository it made, with hooks.
    crafted = tmp_path / "crafted"
    make_repo(crafted, {"x.txt": "x\n"})
    marker = tmp_path / "crafted-hook-ran"
    _plant_hooks(crafted / ".git" / "hooks", marker)
    (checkout.work_tree / ".git").write_text(f"gitdir: {crafted / '.git'}\n", encoding="utf-8")

    with gitrepo.trusted_worktree(checkout):
        sha = await _agent_commit(checkout.work_tree, "a.txt", "on the branch\n", "p/T-002/dev/1")

    assert sha is not None
    assert not marker.exists()
    assert git(repo, "rev-parse", "wf/T-002") == sha  # the commit is on the task's branch
    assert git(crafted, "log", "--format=%s") == "Initial commit"  # the crafted repository is untouched


async def test_a_worktree_git_file_is_not_trusted_unless_registered(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    checkout = gtasks.ensure_worktree(repo, "T-002", worktree_path(repo, "p", "T-002", None))
    (checkout.work_tree / "a.txt").write_text("x\n", encoding="utf-8")
    with pytest.raises(gitrepo.GitError, match="not trusted"):
        await gitrepo.commit_job(
            checkout.work_tree, ["a.txt"], subject="s", body="", key="p/T-002/dev/1", author=AUTHOR
        )


async def test_a_filter_planted_after_the_configuration_was_read_does_nothing(tmp_path: Path) -> None:
    # The repository's configuration is listed once and kept while its files are unchanged: a key
    # planted later, by git or by an in-place rewrite that keeps the file's size, is seen.
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n", "b.txt": "b\n"})
    (repo / ".gitattributes").write_text("*.txt filter=evil\n", encoding="utf-8")
    git(repo, "config", "wf.padding", "x" * 300)
    assert await _agent_commit(repo, "a.txt", "first\n", "p/T-002/dev/1") is not None
    reads = safe._LISTINGS.reads
    assert await _agent_commit(repo, "a.txt", "second\n", "p/T-002/dev/2") is not None
    assert safe._LISTINGS.reads == reads  # unchanged configuration: no git process to list it again

    marker = tmp_path / "filter-ran"
    config = repo / ".git" / "config"
    text = config.read_text(encoding="utf-8")
    planted = f'[filter "evil"]\n\tclean = {_script(tmp_path / "clean.sh", marker)}\n'
    padding = "\tpadding = " + "x" * 300 + "\n"
    assert len(planted) <= len(padding)
    with config.open("r+", encoding="utf-8") as f:  # same inode, same size
        f.write(text.replace(padding, planted + "#" * (len(padding) - len(planted) - 1) + "\n"))
    assert config.stat().st_size == len(text.encode())
    sha = await _agent_commit(repo, "b.txt", "the agent's text\n", "p/T-002/dev/3")

    assert sha is not None
    assert git(repo, "show", f"{sha}:b.txt") == "the agent's text"
    assert not marker.exists()


def test_a_remote_added_after_a_first_look_is_found(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    assert not gtasks.has_remote(repo, "up.stream")
    git(repo, "remote", "add", "up.stream", str(tmp_path / "nowhere"))
    assert gtasks.has_remote(repo, "up.stream")
    assert not gtasks.has_remote(repo, "up")
