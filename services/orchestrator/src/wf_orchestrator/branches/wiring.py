"""This package's parts, made and started together by the orchestrator (`app.py`)."""

from __future__ import annotations

from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from wf_common.config import GitConfig

from wf_orchestrator.branches.commands import BranchCommands
from wf_orchestrator.branches.deploy import DeployMerge
from wf_orchestrator.branches.pushes import PushQueue
from wf_orchestrator.branches.rollback import Rollbacks
from wf_orchestrator.branches.scopes import PauseScopes
from wf_orchestrator.branches.tracking import BranchTracker
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.uow import Runner


class Branches:
    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        runner: Runner,
        ctx: Context,
        git: GitConfig,
        *,
        kick: Callable[[], None],
    ) -> None:
        self.scopes = PauseScopes(js, runner.engine, on_resume=kick)
        self.pushes = PushQueue(runner.engine, git)
        self.tracker = BranchTracker(nc, runner.engine, git)
        self.commands = BranchCommands(
            self.scopes, Rollbacks(runner, ctx, git), DeployMerge(runner, ctx, git, self.pushes)
        )

    async def start(self) -> None:
        await self.scopes.start()
        await self.tracker.start()

    async def stop(self) -> None:
        await self.tracker.stop()
        await self.scopes.stop()
