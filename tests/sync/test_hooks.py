"""Inbound webhooks: `wf hook create` makes a hook, a signed POST /api/hooks/<name> makes an idea or a
task once per delivery id, and bad signatures, replays, oversized and malformed bodies are refused
with a clear 4xx and counted. The real board API (uvicorn), the real orchestrator, NATS, PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from wf_board_api.app import create_app
from wf_board_api.settings import BoardSettings
from wf_cli.embedded import NatsServer
from wf_cli.main import main as wf
from wf_common.db.tables import hooks
from wf_common.hooks import MAX_BODY_BYTES, REPLAY_WINDOW_SECONDS, SIGNATURE_HEADER, sign

from tests.board.conftest import API_TOKEN, AUTH_HEADERS, serve
from tests.orchestrator.hub import Hub


def run_wf(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = wf(list(argv))
    return code, out.getvalue()


async def wf_async(*argv: str) -> tuple[int, str]:
    return await asyncio.to_thread(run_wf, *argv)


@pytest.fixture
async def board(nats_server: NatsServer, database_url: str, hub: Hub) -> AsyncIterator[str]:
    settings = BoardSettings(nats_url=nats_server.url, database_url=database_url, api_token=API_TOKEN)
    async with serve(create_app(settings)) as url:
        yield url


def delivery(**fields: Any) -> bytes:
    body = {"delivery_id": uuid.uuid4().hex, "timestamp": int(time.time()), **fields}
    return json.dumps(body).encode()


async def post(url: str, name: str, body: bytes, secret: str | None, **headers: str) -> httpx.Response:
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    async with httpx.AsyncClient() as client:  # no token: a hook is signed instead
        return await client.post(
            f"{url}/api/hooks/{name}", content=body, headers={"Content-Type": "application/json", **headers}
        )


def secret_from(out: str) -> str:
    [line] = [ln for ln in out.splitlines() if ln.startswith("secret: ")]
    return line.removeprefix("secret: ").strip()


async def listed(url: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(headers=AUTH_HEADERS) as client:
        return {h["name"]: h for h in (await client.get(f"{url}/api/hooks")).json()}


async def test_wf_hook_create_then_a_signed_post_makes_one_idea_per_delivery(
    hub: Hub, board: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WF_TOKEN", API_TOKEN)
    code, out = await wf_async("--url", board, "hook", "create", "ci", "--project", "demo")
    assert code == 0, out
    assert "hook ci made for project demo (idea)" in out
    assert f"url:    {board}/api/hooks/ci" in out
    secret = secret_from(out)
    assert len(secret) == 64

    body = delivery(title="CI failed on main", text="test_add failed: assert 5 == 6")
    first = await post(board, "ci", body, secret)
    assert first.status_code == 202, first.text
    key = first.json()["key"]
    assert first.json() == {"project": "demo", "key": key, "duplicate": False}
    task = await hub.task(key)  # an idea: handed to the PM (queued, or dispatched already)
    assert task["current_stage"] == "pm"
    assert task["title"] == "CI failed on main"
    assert "test_add failed" in task["description"]
    assert task["created_by"] == "hook:ci"

    # The sender retries the same delivery (its answer was lost): the same task, not a second one.
    again = await post(board, "ci", body, secret)
    assert (again.status_code, again.json()) == (202, {"project": "demo", "key": key, "duplicate": True})
    created = [e for e in hub.events_of("task.created") if e.actor == "hook:ci"]
    assert [e.task_key for e in created] == [key]

    code, out = await wf_async("--url", board, "hook", "list")
    assert code == 0, out
    header, row = out.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "PROJECT", "MAKES", "DELIVERED", "DUPLICATES"]
    assert row.split()[:9] == ["ci", "demo", "idea", "1", "1", "0", "0", "0", "0"]
    assert secret not in out

    code, out = await wf_async("--url", board, "hook", "delete", "ci")
    assert (code, "hook ci deleted" in out) == (0, True), out
    gone = await post(board, "ci", delivery(text="after the delete"), secret)
    assert gone.status_code == 404
    assert "there is no hook 'ci'" in gone.json()["message"]


async def test_bad_signatures_replays_and_oversized_bodies_are_refused_and_counted(
    hub: Hub, board: str, database_url: str
) -> None:
    async with httpx.AsyncClient(headers=AUTH_HEADERS) as client:
        made = await client.post(f"{board}/api/hooks", json={"name": "form", "project": "demo"})
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]

    body = delivery(text="A form asked for dark mode")
    unsigned = await post(board, "form", body, None)
    assert (unsigned.status_code, unsigned.json()["error"]) == (401, "bad_signature")
    assert SIGNATURE_HEADER in unsigned.json()["message"]
    wrong = await post(board, "form", body, "not-the-secret")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "bad_signature")
    # Signed, then changed on the way: the signature covers the raw body.
    tampered = await post(
        board, "form", body.replace(b"dark", b"pink"), None, **{SIGNATURE_HEADER: sign(secret, body)}
    )
    assert tampered.status_code == 401

    stale = delivery(text="An old delivery", timestamp=int(time.time()) - REPLAY_WINDOW_SECONDS - 60)
    replayed = await post(board, "form", stale, secret)
    assert (replayed.status_code, replayed.json()["error"]) == (401, "stale_timestamp")
    assert "outside the 300s window" in replayed.json()["message"]

    ok = await post(board, "form", body, secret)
    assert ok.status_code == 202, ok.text
    reused = json.loads(body)
    reused["text"] = "Another body under a used delivery id"
    reused_body = json.dumps(reused).encode()
    conflict = await post(board, "form", reused_body, secret)
    assert (conflict.status_code, conflict.json()["error"]) == (409, "replayed_delivery")
    assert f"task {ok.json()['key']}" in conflict.json()["message"]

    huge = delivery(text="x" * (MAX_BODY_BYTES + 1))
    too_large = await post(board, "form", huge, secret)
    assert (too_large.status_code, too_large.json()["error"]) == (413, "too_large")

    not_json = await post(board, "form", b"{not json", secret)
    assert (not_json.status_code, not_json.json()["message"]) == (422, "the body is not JSON")
    no_id = json.dumps({"timestamp": int(time.time()), "text": "no delivery id"}).encode()
    missing = await post(board, "form", no_id, secret)
    assert missing.status_code == 422
    assert "body.delivery_id" in missing.json()["message"]

    # Title and text each fit, but an idea made of both would be too long: refused, not failed.
    long_idea = delivery(title="A long report", text="y" * 19_995)
    too_long = await post(board, "form", long_idea, secret)
    assert too_long.status_code == 422, too_long.text
    assert too_long.json()["message"].startswith("title and text: ")

    unknown = await post(board, "nosuch", body, secret)
    assert unknown.status_code == 404

    counts = (await listed(board))["form"]
    assert (counts["delivered"], counts["duplicates"]) == (1, 0)
    assert counts["refused"] == {"signature": 3, "replay": 2, "too_large": 1, "invalid": 3}
    ideas = [e for e in hub.events_of("task.created") if e.actor == "hook:form"]
    assert [e.task_key for e in ideas] == [ok.json()["key"]]

    # What the database holds is not enough to sign: no column of the hook holds its secret.
    db = create_async_engine(database_url)
    try:
        async with db.connect() as conn:
            row = (await conn.execute(select(hooks).where(hooks.c.name == "form"))).mappings().one()
    finally:
        await db.dispose()
    assert secret not in json.dumps(dict(row), default=str)
    forged = await post(board, "form", delivery(text="Forged with the salt"), str(row["salt"]))
    assert forged.status_code == 401


async def test_a_task_hook_puts_the_task_straight_into_the_first_work_stage(hub: Hub, board: str) -> None:
    async with httpx.AsyncClient(headers=AUTH_HEADERS) as client:
        made = await client.post(
            f"{board}/api/hooks", json={"name": "bugs", "project": "demo", "action": "task"}
        )
        assert made.status_code == 201, made.text
        twice = await client.post(f"{board}/api/hooks", json={"name": "bugs", "project": "demo"})
        assert twice.status_code == 409
        assert "a hook named 'bugs' exists" in twice.json()["message"]
        nowhere = await client.post(f"{board}/api/hooks", json={"name": "lost", "project": "nosuch"})
        assert nowhere.status_code == 404
    body = delivery(
        title="Fix the crash on empty lists",
        text="Reported through the form",
        acceptance_criteria=["an empty list shows 'nothing yet'"],
        priority=8,
    )
    answer = await post(board, "bugs", body, made.json()["secret"])
    assert answer.status_code == 202, answer.text
    task = await hub.task(answer.json()["key"])
    assert (task["title"], task["priority"]) == ("Fix the crash on empty lists", 8)
    assert task["acceptance_criteria"] == ["an empty list shows 'nothing yet'"]
    job = await hub.next_job("dev")
    assert job.task.key == answer.json()["key"]
    [handoff] = await hub.handoffs(answer.json()["key"])
    assert (handoff["from_stage"], handoff["to_stage"], handoff["notes"]) == (
        "backlog",
        "dev",
        "created by hook bugs",
    )


async def test_managing_hooks_needs_the_token_and_only_a_delivery_does_not(board: str) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{board}/api/hooks")).status_code == 401
        assert (
            await client.post(f"{board}/api/hooks", json={"name": "x", "project": "demo"})
        ).status_code == 401
        assert (await client.delete(f"{board}/api/hooks/x")).status_code == 401
