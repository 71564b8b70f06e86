"""A job's worktree: the task's own checkout on branch `wf/<KEY>` (made by the first job that needs
it, from the main branch as it is then), with a checkpoint ref written before the stage runs.

The runner is the only writer of worktrees and checkpoints at job start; the orchestrator rolls back,
merges and removes them (docs/architecture.md, "Who owns which data").
"""

from __future__ import annotations

import asyncio
import os

from wf_common.config import GitConfig
from wf_common.gitops import tasks as gtasks
from wf_common.gitops.layout import Checkpoint, task_branch
from wf_common.gitops.safe import Checkout, GitError
from wf_common.jobs import Job

from wf_agent_runner.output import OutputSink


async def prepare(job: Job, git: GitConfig, out: OutputSink) -> Checkout | None:
    """The checkout the job works in (None: the project's main checkout, as for the PM)."""
    if not job.worktree:
        return None
    worktree = job.worktree

    def work() -> tuple[Checkout, Checkpoint]:
        if not os.path.isabs(worktree):
            raise GitError(f"the job's worktree {worktree!r} is not an absolute path")
        checkout = gtasks.ensure_worktree(job.project.workspace, job.task.key, worktree, main=git.main_branch)
        return checkout, gtasks.write_checkpoint(checkout, job.task.key, job.stage)

    checkout, checkpoint = await asyncio.to_thread(work)
    await out.emit(
        "log",
        f"working in {checkout.work_tree} on {task_branch(job.task.key)}; "
        f"checkpoint {checkpoint.number}-{checkpoint.stage} at {checkpoint.sha[:10]}",
    )
    return checkout
