"""Who sent a command decides which actor it may name: against the embedded NATS server with the logins
and permissions `wf start` gives it (wf_cli.credentials) and the real orchestrator.

A login publishes commands on wf.cmd.<its kind>.<type> only (the server refuses the others' subjects
and wf.cmd.<type>), and the orchestrator refuses an actor that login may not claim, so a process
holding the sync bridge's password cannot approve or submit as the human."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from sqlalchemy import func, select
from wf_cli.credentials import NATS_KINDS, Credentials
from wf_cli.embedded import NatsServer
from wf_common.commands import CommandReply
from wf_common.db.tables import tasks
from wf_common.subjects import command_subject
from wf_sync_bridge.local import LocalTasks, Refused

from tests.orchestrator.conftest import config
from tests.orchestrator.hub import Hub, eventually


@dataclass
class Login:
    nc: NATS
    errors: list[str] = field(default_factory=list)

    async def request(self, subject: str, body: dict[str, Any]) -> CommandReply:
        msg = await self.nc.request(subject, json.dumps(body).encode(), timeout=10)
        return CommandReply.model_validate_json(msg.data)


@dataclass
class Bus:
    server: NatsServer
    hub: Hub
    logins: dict[str, Login]
    heard: list[str]  # subjects of every command the orchestrator's login could receive

    async def task_count(self) -> int:
        async with self.hub.db.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(tasks))).scalar_one())


@pytest.fixture
async def bus(tmp_path: Path, database_url: str) -> AsyncIterator[Bus]:
    passwords = {kind: secrets.token_urlsafe(24) for kind in NATS_KINDS}
    users = Credentials(api_token="unused", postgres={}, nats=passwords).nats_users()
    with NatsServer(tmp_path / "nats", users=users) as server:
        hub = Hub(server.url_for("orchestrator"), database_url, config())
        logins: dict[str, Login] = {}
        heard: list[str] = []
        try:
            await hub.start()
            await hub.project("demo", tmp_path / "demo")
            for kind in ("board", "sync-bridge", "cli"):
                errors: list[str] = []

                async def on_error(err: Exception, errors: list[str] = errors) -> None:
                    errors.append(str(err))

                nc = await nats.connect(server.url_for(kind), allow_reconnect=False, error_cb=on_error)
                logins[kind] = Login(nc, errors)

            async def tap(msg: Msg) -> None:
                heard.append(msg.subject)

            assert hub.nc is not None
            await hub.nc.subscribe("wf.cmd.>", cb=tap)
            await hub.nc.flush()
            yield Bus(server, hub, logins, heard)
        finally:
            for login in logins.values():
                await login.nc.close()
            await hub.close()


def idea(actor: str) -> dict[str, Any]:
    return {"type": "submit_idea", "project": "demo", "text": "An idea", "actor": actor}


async def test_each_login_sends_as_the_actors_it_may_name(bus: Bus) -> None:
    board, sync, cli = bus.logins["board"], bus.logins["sync-bridge"], bus.logins["cli"]

    ok = await board.request(command_subject("submit_idea", "board"), idea("mcp:cursor"))
    assert ok.ok, ok.error
    assert ok.data is not None
    assert ok.data["task"]["created_by"] == "mcp:cursor"  # an MCP client acting with the board's token
    assert (await cli.request(command_subject("ping", "cli"), {"type": "ping", "actor": "human:ops"})).ok

    # The sync bridge's own client, as the bridge runs it: its tracker actor is accepted.
    key = ok.data["task"]["key"]
    await LocalTasks(sync.nc).command("add_feedback", "sync:jira", project="demo", task_key=key, text="hi")
    assert await bus.task_count() == 1


@pytest.mark.parametrize(
    ("sender", "actor"),
    [
        ("sync-bridge", "human:owner"),  # the bridge's password cannot act as the human ...
        ("sync-bridge", "hook:deploy"),  # ... nor as a signed webhook
        ("board", "sync:jira"),  # the board cannot pass off the owner's click as a tracker's change
        ("cli", "hook:deploy"),
        ("cli", "board-api"),
        ("cli", "mcp:cursor"),  # MCP clients come through the board API only
        ("sync-bridge", "mcp:cursor"),
    ],
)
async def test_an_actor_the_login_may_not_name_is_forbidden_and_changes_nothing(
    bus: Bus, sender: str, actor: str
) -> None:
    reply = await bus.logins[sender].request(command_subject("submit_idea", sender), idea(actor))
    assert not reply.ok
    assert reply.error is not None
    assert reply.error.code == "forbidden"
    assert repr(sender) in reply.error.message
    assert repr(actor) in reply.error.message
    assert await bus.task_count() == 0


async def test_the_sync_bridge_login_cannot_approve_as_the_human(bus: Bus) -> None:
    with pytest.raises(Refused) as refused:
        await LocalTasks(bus.logins["sync-bridge"].nc).command(
            "approve", "human:owner", project="demo", task_key="T-001"
        )
    assert refused.value.code == "forbidden"


@pytest.mark.parametrize(
    "subject",
    [
        command_subject("submit_idea"),  # the orchestrator's own subject
        command_subject("submit_idea", "board"),  # another login's
        command_subject("submit_idea", "orchestrator"),
    ],
)
async def test_the_server_refuses_a_login_publishing_on_another_logins_command_subject(
    bus: Bus, subject: str
) -> None:
    sync = bus.logins["sync-bridge"]
    await sync.nc.publish(subject, json.dumps(idea("human:owner")).encode())
    # A command the login may send, after it on the same connection: once the orchestrator's login
    # heard this one, it would have heard the forged one before it (NATS keeps a connection's order).
    marker = command_subject("ping", "sync-bridge")
    await sync.nc.publish(marker, json.dumps({"type": "ping", "actor": "sync:jira"}).encode())
    await sync.nc.flush()
    await eventually(lambda: _true(marker in bus.heard), what="the marker command")
    await eventually(
        lambda: _true(any("permissions violation" in e.lower() and subject in e for e in sync.errors)),
        what="the server's permissions violation",
    )
    assert subject not in bus.heard
    assert await bus.task_count() == 0


async def test_an_unknown_sender_is_forbidden(bus: Bus) -> None:
    reply = await bus.logins["board"].request("wf.cmd.nobody.ping", {"type": "ping", "actor": "human"})
    assert reply.error is not None
    assert reply.error.code == "forbidden"


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value
