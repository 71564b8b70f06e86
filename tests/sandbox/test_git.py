"""Git inside the sandbox, on each real backend: read-only commands work (in a plain checkout and in a
task's worktree, whose `.git` file points into the repository's own git directory), and nothing in
the sandbox can write the repository's git data (the runner commits on the host)."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from wf_agent_runner.sandbox import Sandbox, open_sandbox

from tests.runner.helpers import git, make_repo
from tests.sandbox.conftest import sandbox_config

LABELS = {"wf.project": "listsnap", "wf.task": "T-021", "wf.execution": "21", "wf.runner": "test"}


def task_worktree(tmp_path: Path) -> tuple[Path, Path]:
    """A repository and a task's worktree of it on branch wf/T-021 (as the orchestrator makes them)."""
    repo = make_repo(tmp_path / "repo", {"app/__init__.py": "", "README.md": "hello\n"})
    tree = tmp_path / "worktrees" / "T-021"
    git(repo, "worktree", "add", "-q", "-b", "wf/T-021", str(tree))
    return repo, tree


@pytest.fixture(params=["checkout", "worktree"])
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    """(repository, what the sandbox mounts): the repository itself, or a task's worktree of it."""
    if request.param == "checkout":
        repo = make_repo(tmp_path / "repo", {"app/__init__.py": "", "README.md": "hello\n"})
        return repo, repo
    return task_worktree(tmp_path)


@pytest.fixture
async def gitbox(backend: str, layout: tuple[Path, Path]) -> AsyncIterator[Sandbox]:
    sb = await open_sandbox(sandbox_config(backend), layout[1], LABELS, lifetime=120)
    try:
        yield sb
    finally:
        await sb.close()


def _state(repo: Path) -> dict[str, str]:
    """What a write to the repository's git data would change: refs, HEADs, config, hooks, objects."""
    gitdir = repo / ".git"
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "config": (gitdir / "config").read_text(),
        "hooks": " ".join(sorted(p.name for p in (gitdir / "hooks").iterdir())),
        "objects": subprocess.run(
            ["git", "count-objects", "-v"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout,
        "heads": " ".join(sorted(str(p.relative_to(gitdir)) for p in gitdir.rglob("HEAD"))),
    }


async def test_read_only_git_commands_work(gitbox: Sandbox, layout: tuple[Path, Path]) -> None:
    _, tree = layout
    (tree / "README.md").write_text("hello\nchanged by the agent\n", encoding="utf-8")
    (tree / "new.py").write_text("x = 1\n", encoding="utf-8")
    out = await gitbox.run(
        "git status --porcelain && git diff && git log --oneline && git branch --show-current", 60
    )
    assert out.exit_code == 0, out.report()
    assert " M README.md" in out.stdout
    assert "?? new.py" in out.stdout
    assert "+changed by the agent" in out.stdout
    assert "Initial commit" in out.stdout
    expected = "main" if tree.name == "repo" else "wf/T-021"
    assert out.stdout.strip().splitlines()[-1] == expected


async def test_git_data_cannot_be_written(gitbox: Sandbox, layout: tuple[Path, Path]) -> None:
    repo, tree = layout
    before = _state(repo)
    pointer = (tree / ".git").read_bytes() if (tree / ".git").is_file() else None
    attacks = {
        "commit": "git add -A && git -c user.name=a -c user.email=a@b commit -qm pwned",
        "hook": 'd=$(git rev-parse --git-common-dir) && echo "echo pwned" > "$d/hooks/post-commit"',
        "config": "git config core.hooksPath /tmp/evil",
        "branch": "git branch evil",
        "ref": 'd=$(git rev-parse --git-dir) && echo 0000000000000000000000000000000000000000 > "$d/HEAD"',
        "pointer": "echo 'gitdir: /tmp/evil' > .git",
        "remove": "rm -rf .git",
    }
    (tree / "work.txt").write_text("agent's work\n", encoding="utf-8")
    for name, attack in attacks.items():
        out = await gitbox.run(f"{attack}; echo rc=$?", 60)
        assert out.exit_code == 0, f"{name}: {out.report()}"
        assert "rc=0" not in out.stdout, f"{name} succeeded: {out.report()}"
    assert _state(repo) == before
    if pointer is not None:
        assert (tree / ".git").read_bytes() == pointer
    # The workspace itself stays writable, and git still reads the repository afterwards.
    out = await gitbox.run("echo more >> work.txt && git status --porcelain", 60)
    assert out.exit_code == 0, out.report()
    assert "?? work.txt" in out.stdout


SECRET = "s3cret-token-in-git-config"


async def test_the_repositorys_config_shows_no_secrets_inside(
    backend: str, layout: tuple[Path, Path]
) -> None:
    """A remote URL with a token, an auth header, a submodule's remote: git keeps them in config files
    under the git directory, which the sandbox shows. A command sees safe copies without them."""
    repo, tree = layout
    git(repo, "remote", "add", "origin", f"https://agent:{SECRET}@example.invalid/repo.git")
    git(repo, "config", "http.extraHeader", f"Authorization: Bearer {SECRET}")
    module = repo / ".git" / "modules" / "lib"
    module.mkdir(parents=True)
    (module / "config").write_text(f'[remote "origin"]\n\turl = https://x:{SECRET}@example.invalid/lib\n')
    before = (repo / ".git" / "config").read_text()
    sb = await open_sandbox(sandbox_config(backend), tree, LABELS, lifetime=120)
    try:
        out = await sb.run(
            "cat .git/config 2>/dev/null; common=$(git rev-parse --git-common-dir); "
            'cat "$common/config"; grep -rI . "$common" 2>/dev/null | grep -v /objects/; '
            "git config --list; git remote -v; git status --porcelain; echo done",
            60,
        )
    finally:
        await sb.close()
    assert out.exit_code == 0, out.report()
    assert out.stdout.rstrip().endswith("done")
    assert SECRET not in out.stdout + out.stderr
    assert "repositoryformatversion = 0" in out.stdout  # what git needs is there: git status worked
    assert "fatal" not in out.stderr, out.report()
    assert (repo / ".git" / "config").read_text() == before  # the host's copy is untouched
