"""Inbound webhooks (wf_common.hooks): the orchestrator owns the `hooks` and `hook_deliveries` rows.
The board API verifies each delivery's signature and timestamp (it holds the key the secrets come
from) and sends `deliver_hook`; here, in one transaction, a delivery id seen before answers its task
again, and a new one makes the idea or task and records the delivery."""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from wf_common.commands import CountHookRefusal, CreateHook, DeleteHook, DeliverHook, SubmitIdea
from wf_common.db.tables import hook_deliveries, hooks, projects
from wf_common.errors import CommandError
from wf_common.fields import error_message
from wf_common.jobs import utcnow

from wf_orchestrator.pipeline import machine
from wf_orchestrator.tasks import handlers, transitions
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.uow import UnitOfWork

NO_HOOK = "there is no hook {name!r}; `wf hook list` shows them, `wf hook create` makes one"


async def create_hook(uow: UnitOfWork, ctx: Context, cmd: CreateHook) -> dict[str, Any]:
    project = await handlers.project_of(uow, ctx, cmd.project)
    salt = secrets.token_hex(16)
    try:
        async with uow.conn.begin_nested():
            await uow.conn.execute(
                insert(hooks).values(
                    name=cmd.name,
                    project_id=project.id,
                    action=cmd.action,
                    salt=salt,
                    created_by=cmd.actor[:100],
                )
            )
    except IntegrityError:
        raise CommandError(
            "conflict",
            f"a hook named {cmd.name!r} exists; delete it first (`wf hook delete`) or pick another name",
        ) from None
    return {"name": cmd.name, "project": project.slug, "action": cmd.action, "salt": salt}


async def delete_hook(uow: UnitOfWork, ctx: Context, cmd: DeleteHook) -> dict[str, Any]:
    gone = await uow.conn.scalar(delete(hooks).where(hooks.c.name == cmd.name).returning(hooks.c.id))
    if gone is None:
        raise CommandError("not_found", NO_HOOK.format(name=cmd.name))
    return {"name": cmd.name}


async def count_hook_refusal(uow: UnitOfWork, ctx: Context, cmd: CountHookRefusal) -> dict[str, Any]:
    column = hooks.c[f"refused_{cmd.reason}"]
    await uow.conn.execute(update(hooks).where(hooks.c.name == cmd.name).values({column: column + 1}))
    return {"name": cmd.name, "reason": cmd.reason}


async def deliver_hook(uow: UnitOfWork, ctx: Context, cmd: DeliverHook) -> dict[str, Any]:
    # The hook row is locked: two copies of one delivery arriving together make one task.
    hook = (
        (
            await uow.conn.execute(
                select(hooks.c.id, hooks.c.action, projects.c.slug)
                .join(projects, projects.c.id == hooks.c.project_id)
                .where(hooks.c.name == cmd.name)
                .with_for_update(of=hooks)
            )
        )
        .mappings()
        .one_or_none()
    )
    if hook is None:
        raise CommandError("not_found", NO_HOOK.format(name=cmd.name))
    seen = (
        (
            await uow.conn.execute(
                select(hook_deliveries.c.body_sha256, hook_deliveries.c.task_key).where(
                    hook_deliveries.c.hook_id == hook["id"], hook_deliveries.c.delivery_id == cmd.delivery_id
                )
            )
        )
        .mappings()
        .one_or_none()
    )
    if seen is not None:
        if seen["body_sha256"] != cmd.body_sha256:
            raise CommandError(
                "conflict",
                f"delivery {cmd.delivery_id!r} of hook {cmd.name!r} was already used for another body "
                f"(task {seen['task_key']}); a new delivery needs a new delivery_id",
            )
        await uow.conn.execute(
            update(hooks).where(hooks.c.id == hook["id"]).values(duplicates=hooks.c.duplicates + 1)
        )
        return {"project": hook["slug"], "key": seen["task_key"], "duplicate": True}
    actor = f"hook:{cmd.name}"
    if hook["action"] == "idea":
        text = "\n\n".join(p for p in (cmd.title, cmd.text) if p)
        if len(text.strip()) < 3:
            raise CommandError("invalid", "text: an idea needs a title or a text of at least 3 characters")
        try:
            idea = SubmitIdea(project=hook["slug"], text=text, priority=cmd.priority, actor=actor)
        except ValidationError as err:  # title and text together can be longer than an idea may be
            raise CommandError("invalid", f"title and text: {error_message(err.errors()[0])}") from None
        made = await handlers.submit_idea(uow, ctx, idea)
        key = str(made["task"]["key"])
    else:
        key = await _create_task(uow, ctx, cmd, hook["slug"], actor)
    await uow.conn.execute(
        insert(hook_deliveries).values(
            hook_id=hook["id"], delivery_id=cmd.delivery_id, body_sha256=cmd.body_sha256, task_key=key
        )
    )
    await uow.conn.execute(
        update(hooks)
        .where(hooks.c.id == hook["id"])
        .values(delivered=hooks.c.delivered + 1, last_delivery_at=utcnow())
    )
    return {"project": hook["slug"], "key": key, "duplicate": False}


async def _create_task(uow: UnitOfWork, ctx: Context, cmd: DeliverHook, slug: str, actor: str) -> str:
    title = cmd.title or machine.first_line(cmd.text, machine.TITLE_MAX)
    if len(title.strip()) < 3:
        raise CommandError(
            "invalid", "title: a task needs a title (or a first line of text) of at least 3 characters"
        )
    project = await handlers.project_of(uow, ctx, slug)
    now = utcnow()
    task = await handlers.insert_entry_task(
        uow,
        ctx,
        project,
        title=title,
        text=cmd.text,
        priority=cmd.priority,
        actor=actor,
        now=now,
        acceptance_criteria=cmd.acceptance_criteria,
    )
    await transitions.apply(uow, ctx, task, machine.hook_task(ctx.pipeline, cmd.name), actor=actor, now=now)
    return task.task_key
