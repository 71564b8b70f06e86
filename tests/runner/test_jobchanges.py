"""What a job changed in its worktree (jobchanges.py): symlinks are judged by where they point and
never followed; what lies behind a symlinked directory is not committed."""

from __future__ import annotations

import shutil
from pathlib import Path

from wf_agent_runner import gitrepo, jobchanges

from tests.runner.helpers import PRICES, git, make_repo

AUTHOR = gitrepo.Author.agent("dev")


async def test_a_symlink_inside_the_worktree_is_committed_as_a_link(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", {"README.md": "# Shop\n"})
    baseline = await jobchanges.snapshot(root)
    (root / "docs").mkdir()
    (root / "docs" / "index.md").symlink_to("../README.md")
    changes = await jobchanges.since(root, baseline)
    assert changes.paths == ["docs/index.md"]
    assert changes.refused == []
    sha = await gitrepo.commit_job(
        root, changes.paths, subject="T-1: link", body="", key="p/T-1/dev/1", author=AUTHOR
    )
    assert sha is not None
    assert git(root, "ls-tree", sha, "docs/index.md").startswith("120000 ")  # a link, not a copy


async def test_a_directory_swapped_for_a_symlink_out_of_the_worktree_commits_nothing(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", {"app/__init__.py": "", "app/prices.py": PRICES})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "prices.py").write_text("SECRET = 'host file'\n", encoding="utf-8")
    baseline = await jobchanges.snapshot(root)
    shutil.rmtree(root / "app")
    (root / "app").symlink_to(outside)
    changes = await jobchanges.since(root, baseline)
    assert changes.paths == []
    assert dict(changes.refused) == {
        "app": f"a symbolic link to {str(outside)!r}, outside the worktree",
        "app/__init__.py": "behind a symbolic link",
        "app/prices.py": "behind a symbolic link",
    }
    assert (
        await gitrepo.commit_job(
            root, changes.paths, subject="T-1: x", body="", key="p/T-1/dev/1", author=AUTHOR
        )
        is None
    )
