"""What the lifespan opens once and every request shares, and the dependencies that hand it out."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from wf_common.text import ACTOR_MAX, LINE_PATTERN

from wf_board_api.board.service import BoardCache
from wf_board_api.db import read_only
from wf_board_api.errors import field_error
from wf_board_api.events.hub import EventHub
from wf_board_api.gateway import CommandGateway
from wf_board_api.settings import BoardSettings


@dataclass
class AppState:
    settings: BoardSettings
    nc: NATS
    js: JetStreamContext
    engine: AsyncEngine
    gateway: CommandGateway
    # The one live reader of WF_EVENTS, fanned out to every open /api/events stream.
    hub: EventHub
    # Set when the server is asked to stop: open event streams end instead of holding shutdown up.
    # A threading.Event because uvicorn's signal handler is not a coroutine.
    stopping: threading.Event
    # The boards built last, by the version of what they show (wf_board_api.board.service).
    board_cache: BoardCache = field(default_factory=BoardCache)


def get_state(request: Request) -> AppState:
    state: AppState = request.state.app
    return state


async def get_db(state: Annotated[AppState, Depends(get_state)]) -> AsyncIterator[AsyncConnection]:
    async with read_only(state.engine) as conn:
        yield conn


def get_gateway(state: Annotated[AppState, Depends(get_state)]) -> CommandGateway:
    return state.gateway


ACTOR_HEADER = "X-WF-Actor"
CLIENT_HEADER = "X-WF-Client"
CLIENT_MAX = 55  # human:<owner, 30> via <client, 55> fits in an actor (ACTOR_MAX)
CLIENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9:._@/+-]*$"  # a tool's name, e.g. mcp:claude-code
# An MCP client (wf_common.mcp_board) is recorded as itself: `mcp:<client name>`.
MCP_CLIENT_PREFIX = "mcp:"


def get_actor(
    state: Annotated[AppState, Depends(get_state)],
    claimed: Annotated[
        str | None,
        Header(
            alias=ACTOR_HEADER,
            max_length=ACTOR_MAX,
            pattern=LINE_PATTERN,
            # Not offered in the schema: no value but the holder's own name is accepted.
            include_in_schema=False,
        ),
    ] = None,
    client: Annotated[
        str | None,
        Header(
            alias=CLIENT_HEADER,
            min_length=1,
            max_length=CLIENT_MAX,
            pattern=CLIENT_PATTERN,
            description=(
                "the tool acting with the token: an MCP client (mcp:<name>) is recorded as itself, "
                "any other tool after 'via' (human:<owner> via <tool>)"
            ),
        ),
    ] = None,
) -> str:
    """Who issued a command: the holder of the credentials, never what the request says.

    Every request that gets this far carried the install's token (Bearer) or the session made from
    it, and the token belongs to the owner (`board.owner`), so the actor is `human:<owner>`. A
    client may say which tool it is (`X-WF-Client`): an MCP client (`mcp:<client name>`, from its
    `initialize` clientInfo) is recorded as itself, as the issue's audit trail asks, and any other
    tool as `human:<owner> via <tool>`. Either way the token is what lets it act, and the pattern
    keeps it from passing for a human, a hook or a tracker (no `human:`, `hook:`, `sync:` actor
    can be made from it). A request that claims another actor (`X-WF-Actor`) is refused, so a
    caller learns its claim is not taken instead of believing it was recorded.
    """
    who = f"human:{state.settings.workflow.board.owner}"
    if claimed is not None and claimed != who:
        raise field_error(
            f"header.{ACTOR_HEADER}",
            f"the actor is who authenticated ({who}, the holder of this token); a request cannot "
            f"name another: leave the header out (a tool may name itself in {CLIENT_HEADER})",
        )
    if client is None:
        return who
    if client.startswith(MCP_CLIENT_PREFIX) and len(client) > len(MCP_CLIENT_PREFIX):
        return client
    return f"{who} via {client}"


State = Annotated[AppState, Depends(get_state)]
Db = Annotated[AsyncConnection, Depends(get_db)]
Gateway = Annotated[CommandGateway, Depends(get_gateway)]
Actor = Annotated[str, Depends(get_actor)]
