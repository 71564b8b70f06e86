"""Forward commands to the orchestrator (NATS request/reply on wf.cmd.board.<type>, the board's own
login's subjects) and unwrap the reply.

The HTTP handlers build a `wf_common.commands` model from the path, the body and the actor (the
credentials' holder, `state.get_actor`); `build_command` reports a value the orchestrator's schema
refuses as a 422 naming the field where the client wrote it (``path.key``, ``body.blocked_by``), so
the command schema stays the one source of the rules.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from pydantic import BaseModel, ValidationError
from wf_common import bus
from wf_common.commands import CommandReply
from wf_common.errors import BusError, CommandError
from wf_common.subjects import command_subject

from wf_board_api.errors import ORCHESTRATOR_DOWN, Invalid, Unavailable
from wf_board_api.exception_handlers import describe_validation_errors

log = logging.getLogger(__name__)

C = TypeVar("C", bound=BaseModel)


def build_command(cls: type[C], locations: Mapping[str, str], **values: Any) -> C:
    """Validate a command; `locations` maps command fields to request places, e.g. project→path.slug.

    Fields not in `locations` came from the body. None values are left out so defaults apply.
    """
    try:
        return cls.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        errors = []
        for e in err.errors():
            loc = list(e["loc"])
            head = str(loc[0]) if loc else ""
            where = locations.get(head, f"body.{head}" if head else "body")
            errors.append({**e, "loc": (*where.split("."), *loc[1:])})
        fields = describe_validation_errors(errors)
        raise Invalid("; ".join(f"{f['field']}: {f['message']}" for f in fields), fields) from None


class CommandGateway:
    def __init__(self, nc: NATS, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout

    async def send(self, command: BaseModel, *, within: float | None = None) -> dict[str, Any]:
        """Send and return the reply's data; a refusal raises CommandError with the orchestrator's code."""
        kind = str(getattr(command, "type"))  # noqa: B009 - every command model has a `type` literal
        subject = command_subject(kind, "board")
        try:
            raw = await bus.request(self._nc, subject, command, timeout=within or self._timeout)
        except (BusError, nats.errors.Error) as err:
            # No responders, a time-out, or NATS itself down (reconnecting): all mean "try later".
            raise Unavailable(f"{ORCHESTRATOR_DOWN} ({err or type(err).__name__})") from err
        try:
            reply = CommandReply.model_validate_json(raw)
        except ValidationError as err:
            log.exception("unreadable reply on %s (%r)", subject, raw[:500])
            raise CommandError(
                "internal", f"the orchestrator sent a reply to {kind} that is not a CommandReply"
            ) from err
        if not reply.ok:
            if reply.error is None:
                raise CommandError("internal", f"the orchestrator refused {kind} without saying why")
            raise CommandError(reply.error.code, reply.error.message)
        return reply.data or {}
