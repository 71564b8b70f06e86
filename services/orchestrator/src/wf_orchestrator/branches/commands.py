"""The commands this package answers, hooked into the command server (`CommandServer.execute`):
scoped pause/resume, rollback, list_checkpoints, and approve at the merge stage."""

from __future__ import annotations

from typing import Any

from wf_common.commands import Approve, Command, ListCheckpoints, Pause, Resume, Rollback

from wf_orchestrator.branches.deploy import DeployMerge
from wf_orchestrator.branches.rollback import Rollbacks
from wf_orchestrator.branches.scopes import PauseScopes
from wf_orchestrator.uow import OwnHandler


class BranchCommands:
    def __init__(self, scopes: PauseScopes, rollbacks: Rollbacks, deploy: DeployMerge) -> None:
        self.scopes = scopes
        self.rollbacks = rollbacks
        self.deploy = deploy

    async def handle(self, cmd: Command, default: OwnHandler) -> dict[str, Any] | None:
        """The reply's data, or None when the command is not one of these (the server goes on)."""
        match cmd:
            case Pause() | Resume() if cmd.project is not None:
                return await self.scopes.set(cmd)
            case Rollback():
                return await self.rollbacks.rollback(cmd)
            case ListCheckpoints():
                return await self.rollbacks.checkpoints(cmd)
            case Approve():
                return await self.deploy.approve(cmd, default)
        return None
