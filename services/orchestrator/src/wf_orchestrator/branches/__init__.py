"""Task branches and pauses: per-task worktrees in jobs, pause scopes, rollback to a checkpoint, the
merge at the deploy gate with its queued push, and the removal of a finished task's worktree.

Git writes here run off the event loop (`asyncio.to_thread`) through `wf_common.gitops`.
"""
