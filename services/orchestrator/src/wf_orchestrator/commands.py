"""Commands: NATS request/reply on wf.cmd.<sender>.<type> and wf.cmd.<type> (queue group
"orchestrator"), answered with a CommandReply. The sender is the NATS login the subject names (the
embedded server lets a login publish on its own subjects only); an actor that login may not claim
(`wf_common.commands.may_claim`) is "forbidden". Refusals are CommandErrors with a code; a malformed
request is "invalid" naming the field; anything unexpected is "internal" (and logged with its traceback)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from wf_common.commands import (
    COMMAND_ADAPTER,
    COMMAND_TYPES,
    AddFeedback,
    Approve,
    CancelTask,
    Command,
    CommandReply,
    CountHookRefusal,
    CreateHook,
    CreateProject,
    DeleteHook,
    DeliverHook,
    EditTask,
    KillBug,
    MoveTask,
    Pause,
    Ping,
    Reject,
    ReplyError,
    Resume,
    RetryTask,
    SubmitIdea,
    may_claim,
)
from wf_common.db.tables import projects
from wf_common.errors import CommandError
from wf_common.events import ProjectCreated
from wf_common.fields import error_message
from wf_common.subjects import COMMANDS_PREFIX, COMMANDS_QUEUE

from wf_orchestrator import workspace
from wf_orchestrator.branches.commands import BranchCommands
from wf_orchestrator.control import Control
from wf_orchestrator.tasks import handlers, hooks, repo
from wf_orchestrator.tasks.context import Context, project_snapshot
from wf_orchestrator.tasks.rows import ProjectRow
from wf_orchestrator.uow import Runner, UnitOfWork

log = logging.getLogger(__name__)

TaskHandler = Callable[[UnitOfWork, Context, Any], Awaitable[dict[str, Any]]]
_TASK_HANDLERS: dict[type[Any], TaskHandler] = {
    SubmitIdea: handlers.submit_idea,
    Approve: handlers.approve,
    Reject: handlers.reject,
    EditTask: handlers.edit_task,
    AddFeedback: handlers.add_feedback,
    RetryTask: handlers.retry_task,
    MoveTask: handlers.move_task,
    KillBug: handlers.kill_bug,
    CreateHook: hooks.create_hook,
    DeleteHook: hooks.delete_hook,
    DeliverHook: hooks.deliver_hook,
    CountHookRefusal: hooks.count_hook_refusal,
    CancelTask: handlers.cancel_task,
}


def validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        # Drop the union tag pydantic puts first ("approve.task_key" → "task_key").
        loc = [str(p) for p in e["loc"]]
        if len(loc) > 1 and loc[0] in COMMAND_TYPES:
            loc = loc[1:]
        parts.append(f"{'.'.join(loc) or 'command'}: {error_message(e)}")
    return "; ".join(parts)


class CommandServer:
    def __init__(
        self,
        nc: NATS,
        runner: Runner,
        ctx: Context,
        control: Control,
        *,
        concurrency: int = 8,
        branches: BranchCommands | None = None,
    ) -> None:
        self._branches = branches
        self._nc = nc
        self._runner = runner
        self._ctx = ctx
        self._control = control
        self._slots = asyncio.Semaphore(concurrency)
        self._sub: Subscription | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(f"{COMMANDS_PREFIX}.>", queue=COMMANDS_QUEUE, cb=self._on_msg)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _on_msg(self, msg: Msg) -> None:
        # The subscription delivers one message at a time; commands of different tasks need not wait.
        task = asyncio.create_task(self._serve(msg))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _serve(self, msg: Msg) -> None:
        async with self._slots:
            reply = await self._serve_subject(msg.subject, msg.data)
        if msg.reply:
            try:
                await msg.respond(reply.model_dump_json(exclude_none=True).encode())
            except Exception as err:  # noqa: BLE001 - a boundary: any failure is reported or logged, never crashes the loop
                log.warning("could not reply to %s: %s", msg.subject, err)

    async def _serve_subject(self, subject: str, data: bytes) -> CommandReply:
        # wf.cmd.<type> or wf.cmd.<sender>.<type>
        tokens = subject.split(".")[len(COMMANDS_PREFIX.split(".")) :]
        if len(tokens) == 1:
            return await self.handle(tokens[0], data)
        if len(tokens) == 2:
            return await self.handle(tokens[1], data, sender=tokens[0])
        return CommandReply(
            ok=False,
            error=ReplyError(
                code="invalid", message=f"{subject}: send commands on {COMMANDS_PREFIX}.<login>.<type>"
            ),
        )

    async def handle(self, kind: str, data: bytes, *, sender: str | None = None) -> CommandReply:
        """Parse and run one command; `sender` is the login the subject names (None: wf.cmd.<type>)."""
        try:
            cmd = self.parse(kind, data)
            self.check_sender(sender, cmd)
            return CommandReply(ok=True, data=await self.execute(cmd))
        except CommandError as err:
            return CommandReply(ok=False, error=ReplyError(code=err.code, message=err.message))
        except Exception:
            log.exception("command %s failed", kind)
            return CommandReply(
                ok=False, error=ReplyError(code="internal", message="the orchestrator failed; see its log")
            )

    @staticmethod
    def check_sender(sender: str | None, cmd: Command) -> None:
        """Refuse an actor the sending login may not name (wf_common.commands.SENDERS)."""
        if not may_claim(sender, cmd.actor):
            raise CommandError(
                "forbidden",
                f"the NATS login {sender!r} may not send a command as {cmd.actor!r}: a command's actor "
                "must be one its sender's login may name (see the Security section of docs/architecture.md)",
            )

    @staticmethod
    def parse(kind: str, data: bytes) -> Command:
        try:
            raw = json.loads(data or b"{}")
        except ValueError as err:
            raise CommandError("invalid", f"the command is not JSON: {err}") from None
        if not isinstance(raw, dict):
            raise CommandError("invalid", "the command must be a JSON object")
        raw.setdefault("type", kind)
        if raw["type"] != kind:
            raise CommandError("invalid", f"type: {raw['type']!r} sent on the subject of {kind!r}")
        try:
            return COMMAND_ADAPTER.validate_python(raw)
        except ValidationError as err:
            raise CommandError("invalid", validation_message(err)) from None

    async def execute(self, cmd: Command) -> dict[str, Any]:
        handler = _TASK_HANDLERS.get(type(cmd))

        async def default(also: Callable[[UnitOfWork], None] | None = None) -> dict[str, Any]:
            assert handler is not None  # noqa: S101 - only passed for commands with a handler

            async def work(uow: UnitOfWork) -> dict[str, Any]:
                data = await handler(uow, self._ctx, cmd)
                if also is not None:
                    also(uow)
                return data

            return await self._runner.run(work, must_publish=False)

        if self._branches is not None:
            data = await self._branches.handle(cmd, default)
            if data is not None:
                return data
        if handler is not None:
            return await default()
        match cmd:
            case CreateProject():
                return await self._create_project(cmd)
            case Pause() | Resume():
                await self._control.set(isinstance(cmd, Pause), cmd.actor)
                return {"paused": self._control.paused}
            case Ping():
                return {"ok": True}
        raise CommandError("invalid", f"unknown command {cmd.type!r}")

    async def _create_project(self, cmd: CreateProject) -> dict[str, Any]:
        async with self._runner.engine.connect() as conn:
            if await repo.project_by_slug(conn, cmd.slug) is not None:
                raise CommandError("conflict", f"project {cmd.slug!r} already exists")
            taken = await repo.project_workspaces(conn)
        # Every check before anything is made on disk: a refused command leaves no directory behind.
        path = await workspace.check(cmd.workspace, taken)
        await workspace.prepare(path)
        test_command = cmd.test_command or self._ctx.default_test_command

        async def work(uow: UnitOfWork) -> dict[str, Any]:
            try:
                row = (
                    (
                        await uow.conn.execute(
                            projects.insert()
                            .values(
                                slug=cmd.slug,
                                name=cmd.name or cmd.slug,
                                workspace=path,
                                test_command=test_command,
                                created_by=cmd.actor[:100],
                            )
                            .returning(projects)
                        )
                    )
                    .mappings()
                    .one()
                )
            except IntegrityError as err:
                # Another create_project won the race for the slug or the workspace.
                what = "workspace" if "workspace" in str(err.orig) else "slug"
                taken_by = (
                    f"project {cmd.slug!r} already exists"
                    if what == "slug"
                    else (f"the workspace {path} is already used by another project")
                )
                raise CommandError("conflict", taken_by) from None
            project = ProjectRow.of(row)
            self._ctx.projects[project.id] = project
            snap = project_snapshot(project)
            uow.emit(ProjectCreated(project=project.slug, actor=cmd.actor, snapshot=snap))
            return {"project": snap.model_dump(mode="json")}

        return await self._runner.run(work, must_publish=False)
