"""Names and places of a task's git state: its branch, its worktree, its checkpoint refs.

- branch `wf/<KEY>`;
- worktree `<workspace>/.workflow/worktrees/<KEY>` (default), or `<git.worktrees_dir>/<project>/<KEY>`;
- checkpoint refs `refs/wf/checkpoints/<KEY>/<n>-<stage>`, one before every stage the task runs
  (n counts up from 1 per task), plus `<n>-rollback` saving what a rollback moved away from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BRANCH_PREFIX = "wf/"
CHECKPOINT_PREFIX = "refs/wf/checkpoints/"
WORKTREES_SUBDIR = Path(".workflow") / "worktrees"
_CHECKPOINT_NAME = re.compile(r"^(\d+)-([a-z][a-z0-9_-]*)$")


def task_branch(task_key: str) -> str:
    return f"{BRANCH_PREFIX}{task_key}"


def worktree_path(workspace: str | Path, project: str, task_key: str, worktrees_dir: str | None) -> Path:
    if worktrees_dir:
        return Path(worktrees_dir).expanduser().absolute() / project / task_key
    return Path(workspace).absolute() / WORKTREES_SUBDIR / task_key


def checkpoint_ref(task_key: str, n: int, stage: str) -> str:
    return f"{CHECKPOINT_PREFIX}{task_key}/{n}-{stage}"


@dataclass(frozen=True)
class Checkpoint:
    number: int
    stage: str
    ref: str
    sha: str
    at: str  # ISO 8601, the commit's date (when the tree was last changed)

    def as_dict(self) -> dict[str, object]:
        return {"number": self.number, "stage": self.stage, "ref": self.ref, "sha": self.sha, "at": self.at}


def parse_checkpoint(ref: str, sha: str, at: str) -> Checkpoint | None:
    task_part = ref.rsplit("/", 1)[-1]
    m = _CHECKPOINT_NAME.match(task_part)
    if not ref.startswith(CHECKPOINT_PREFIX) or m is None:
        return None
    return Checkpoint(int(m.group(1)), m.group(2), ref, sha, at)
