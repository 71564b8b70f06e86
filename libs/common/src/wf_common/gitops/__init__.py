"""Git for the services: hardened commands (`safe`), the names of a task's branch, worktree and
checkpoints (`layout`), and the operations on them (`tasks`)."""

from wf_common.gitops.layout import Checkpoint, checkpoint_ref, task_branch, worktree_path
from wf_common.gitops.safe import Checkout, GitError, SafeGit

__all__ = ["Checkout", "Checkpoint", "GitError", "SafeGit", "checkpoint_ref", "task_branch", "worktree_path"]
