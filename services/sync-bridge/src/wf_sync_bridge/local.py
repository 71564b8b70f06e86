"""The bridge's only way to change local tasks: the orchestrator's commands (request/reply
wf.cmd.sync-bridge.*), so the pipeline's rules still apply to a move or edit made in a tracker."""

from __future__ import annotations

import json
from typing import Any

import nats
from nats.aio.client import Client as NATS
from wf_common.commands import CommandReply
from wf_common.errors import BusError
from wf_common.subjects import command_subject


class Refused(Exception):
    """The orchestrator said no (invalid move, unknown key, ...): the local value stands."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class LocalTasks:
    def __init__(self, nc: NATS, *, timeout: float = 10.0) -> None:
        self.nc = nc
        self.timeout = timeout

    async def command(self, kind: str, actor: str, **fields: Any) -> dict[str, Any]:
        body = json.dumps({"type": kind, "actor": actor, **fields}).encode()
        # The bridge's own login's subject: the orchestrator lets it name `sync:<tracker>` actors only.
        subject = command_subject(kind, "sync-bridge")
        try:
            msg = await self.nc.request(subject, body, timeout=self.timeout)
        except nats.errors.NoRespondersError:
            raise BusError(f"nobody answers on {subject}: is the orchestrator running?") from None
        except (TimeoutError, nats.errors.TimeoutError):
            raise BusError(f"no answer on {subject} within {self.timeout:.0f}s") from None
        reply = CommandReply.model_validate_json(msg.data)
        if not reply.ok:
            err = reply.error
            code, message = (err.code, err.message) if err else ("internal", "no reason given")
            if code in ("internal", "unavailable"):
                raise BusError(f"{kind} failed in the orchestrator: {message}")
            raise Refused(code, message)
        return reply.data or {}

    async def edit(self, actor: str, project: str, key: str, fields: dict[str, Any]) -> None:
        await self.command("edit_task", actor, project=project, task_key=key, **fields)

    async def move(self, actor: str, project: str, key: str, stage: str) -> None:
        # Contract #2: move_task {project, key, to_stage}; task_key too for readers of the older name.
        await self.command("move_task", actor, project=project, key=key, task_key=key, to_stage=stage)

    async def cancel(self, actor: str, project: str, key: str, reason: str) -> None:
        await self.command("cancel_task", actor, project=project, task_key=key, reason=reason[:2000])

    async def feedback(self, actor: str, project: str, key: str, text: str) -> None:
        await self.command("add_feedback", actor, project=project, task_key=key, text=text[:20_000])
