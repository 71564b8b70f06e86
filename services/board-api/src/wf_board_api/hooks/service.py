"""Inbound webhooks on the board's side: read the hooks (read-only), derive their secrets, verify a
delivery (size, signature, timestamp, body), and hand it to the orchestrator (`deliver_hook`), which
records it and makes the task once per delivery id. Every refusal is counted (`count_hook_refusal`).
The board never stores a secret: it derives it from its key and the hook's salt (wf_common.hooks)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.commands import CountHookRefusal, DeliverHook
from wf_common.db.tables import hooks, projects
from wf_common.errors import CommandError
from wf_common.hooks import (
    HOOK_NAME,
    MAX_BODY_BYTES,
    REFUSALS,
    REPLAY_WINDOW_SECONDS,
    SIGNATURE_HEADER,
    HookBody,
    Refusal,
    body_digest,
    hook_key,
    hook_secret,
    signature_ok,
)

from wf_board_api.errors import HookRefused, NotFound, Unavailable
from wf_board_api.exception_handlers import describe_validation_errors
from wf_board_api.gateway import CommandGateway

log = logging.getLogger(__name__)


def secret_of(api_token: str, name: str, salt: str) -> str:
    return hook_secret(hook_key(api_token), name, salt)


async def list_hooks(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(hooks, projects.c.slug)
        .join(projects, projects.c.id == hooks.c.project_id)
        .order_by(hooks.c.name)
    )
    return [_shown(r) for r in rows.mappings()]


def _shown(r: Any) -> dict[str, Any]:
    # Never the salt: it is not the secret, but nobody needs it outside this module.
    return {
        "name": r["name"],
        "project": r["slug"],
        "action": r["action"],
        "url": f"/api/hooks/{r['name']}",
        "created_by": r["created_by"],
        "created_at": r["created_at"].isoformat(),
        "delivered": r["delivered"],
        "duplicates": r["duplicates"],
        "refused": {reason: r[f"refused_{reason}"] for reason in REFUSALS},
        "last_delivery_at": r["last_delivery_at"].isoformat() if r["last_delivery_at"] else None,
    }


async def salt_of(conn: AsyncConnection, name: str) -> str:
    salt = (
        await conn.scalar(select(hooks.c.salt).where(hooks.c.name == name)) if HOOK_NAME.match(name) else None
    )
    if salt is None:
        raise NotFound(f"there is no hook {name!r}; `wf hook list` shows them, `wf hook create` makes one")
    return str(salt)


class Delivery:
    """One POST /api/hooks/<name>: each check in order, each refusal counted and explained."""

    def __init__(self, gateway: CommandGateway, api_token: str, name: str) -> None:
        self.gateway = gateway
        self.api_token = api_token
        self.name = name

    async def refuse(self, reason: Refusal, status: int, code: str, message: str) -> HookRefused:
        log.warning("hook %s: delivery refused (%s): %s", self.name, reason, message)
        try:
            await self.gateway.send(
                CountHookRefusal(name=self.name, reason=reason, actor=f"hook:{self.name}")
            )
        except (CommandError, Unavailable) as err:  # gone meanwhile, or the orchestrator is down
            log.info("hook %s: refusal not counted: %s", self.name, err.message)
        return HookRefused(status, code, message)

    async def accept(self, salt: str, body: bytes | None, signature: str | None) -> dict[str, Any]:
        """`body` is None when it was over MAX_BODY_BYTES (not read to its end)."""
        if body is None:
            raise await self.refuse(
                "too_large",
                413,
                "too_large",
                f"the body is over {MAX_BODY_BYTES} bytes; send less (a link, a summary)",
            )
        if not signature_ok(secret_of(self.api_token, self.name, salt), body, signature):
            raise await self.refuse(
                "signature",
                401,
                "bad_signature",
                f"the {SIGNATURE_HEADER} header is missing or is not sha256=<HMAC-SHA256 of the raw "
                "body with the hook's secret> (the secret `wf hook create` printed)",
            )
        parsed = await self._parse(body)
        age = time.time() - parsed.timestamp
        if abs(age) > REPLAY_WINDOW_SECONDS:
            raise await self.refuse(
                "replay",
                401,
                "stale_timestamp",
                f"timestamp {parsed.timestamp} is {abs(age):.0f}s from now, outside the "
                f"{REPLAY_WINDOW_SECONDS}s window: a replayed delivery, or the sender's clock is off",
            )
        cmd = DeliverHook(
            name=self.name,
            delivery_id=parsed.delivery_id,
            body_sha256=body_digest(body),
            title=parsed.title,
            text=parsed.text,
            acceptance_criteria=parsed.acceptance_criteria,
            priority=parsed.priority,
            actor=f"hook:{self.name}",
        )
        try:
            return await self.gateway.send(cmd)
        except CommandError as err:
            if err.code == "conflict":
                raise await self.refuse("replay", 409, "replayed_delivery", err.message) from None
            if err.code == "invalid":
                raise await self.refuse("invalid", 422, "invalid", err.message) from None
            raise

    async def _parse(self, body: bytes) -> HookBody:
        try:
            raw = json.loads(body)
        except ValueError:
            raise await self.refuse("invalid", 422, "invalid", "the body is not JSON") from None
        try:
            return HookBody.model_validate(raw)
        except ValidationError as err:
            fields = describe_validation_errors([{**e, "loc": ("body", *e["loc"])} for e in err.errors()])
            message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
            raise await self.refuse("invalid", 422, "invalid", message) from None
