"""Which worktree a job works in (contract: `Job.worktree`; the runner makes it on first use)."""

from __future__ import annotations

from wf_common.config import GitConfig
from wf_common.gitops.layout import worktree_path


def job_worktree(git: GitConfig, workspace: str, project: str, task_key: str, is_idea: bool) -> str | None:
    """The task's worktree; None for an idea (the PM works in the main checkout, on the main branch)."""
    if is_idea:
        return None
    return str(worktree_path(workspace, project, task_key, git.worktrees_dir))
