"""What the lifespan opens once and every request shares, and the dependencies that hand it out."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from wf_common.text import ACTOR_MAX, LINE_PATTERN

from wf_board_api.db import read_only
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


def get_state(request: Request) -> AppState:
    state: AppState = request.state.app
    return state


async def get_db(state: Annotated[AppState, Depends(get_state)]) -> AsyncIterator[AsyncConnection]:
    async with read_only(state.engine) as conn:
        yield conn


def get_gateway(state: Annotated[AppState, Depends(get_state)]) -> CommandGateway:
    return state.gateway


def get_actor(
    actor: Annotated[
        str,
        Header(
            alias="X-WF-Actor",
            min_length=1,
            max_length=ACTOR_MAX,
            pattern=LINE_PATTERN,
            description="who issued the command (a person or an agent); recorded on the command",
        ),
    ] = "human",
) -> str:
    return actor


State = Annotated[AppState, Depends(get_state)]
Db = Annotated[AsyncConnection, Depends(get_db)]
Gateway = Annotated[CommandGateway, Depends(get_gateway)]
Actor = Annotated[str, Depends(get_actor)]
