"""The orchestrator's command subjects (wf.cmd.*) under generated payloads, against the real orchestrator.

Hypothesis sends commands of every type with fields of every kind (NUL, lone surrogates, control
characters, huge strings, wrong types, unknown fields), to known and unknown subjects, and raw bytes
that are not JSON or not UTF-8. Every reply must be a CommandReply; a refused command must leave the
state as it was (the projects, tasks, bugs, handoffs and the pause switch); the orchestrator never logs
a traceback. A workspace the rules accept is sent as a fresh directory under tmp (it is really made).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NATS
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from wf_common.commands import COMMAND_TYPES, CommandReply
from wf_common.db.tables import bugs, feedback, handoffs, projects, tasks
from wf_common.subjects import CONTROL_BUCKET, PAUSED_KEY, command_subject
from wf_common.workspaces import workspace_problem

from tests.fixtures.stack import LiveStack

FIELDS = [
    "actor", "project", "slug", "name", "workspace", "test_command", "text", "priority", "task_key",
    "note", "reason", "title", "description", "acceptance_criteria", "blocked_by", "bug_key", "type",
    "schema_version", "surprise",
]  # fmt: skip
# Text with what broke things before: NUL, lone surrogates, controls, and the shapes of real values.
texts = st.one_of(
    st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=30),
    st.sampled_from(
        ["T-001", "t-001", "B-001", "demo", "/", "/etc", "0", "..", "\x00", "\ud800", "a\udfffb"]
    ),
    st.builds(lambda s: "/tmp/" + s, st.text(max_size=10)),
    st.just("x" * 30_000),
)
values = st.recursive(
    st.one_of(texts, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
commands = st.tuples(
    st.one_of(st.sampled_from(COMMAND_TYPES), st.from_regex(r"\A[a-z_]{1,12}\Z")),
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=8),
)
raw_payloads = st.one_of(st.binary(max_size=64), st.sampled_from([b"", b"[]", b"null", b"\xff\xfe", b'"x"']))


@pytest.fixture(scope="module")
def engine(stack: LiveStack) -> AsyncEngine:
    # NullPool: nothing is kept open between examples, so nothing to dispose of either.
    return create_async_engine(stack.database_url, poolclass=NullPool)


async def snapshot(nc: NATS, db: AsyncEngine) -> dict[str, Any]:
    """What a refused command must not change."""
    async with db.connect() as conn:
        counts = {
            t.name: await conn.scalar(select(func.count()).select_from(t))
            for t in (projects, tasks, bugs, handoffs, feedback)
        }
        rows = (await conn.execute(select(tasks.c.task_key, tasks.c.state, tasks.c.title))).all()
    kv = await nc.jetstream().key_value(CONTROL_BUCKET)
    try:
        paused = (await kv.get(PAUSED_KEY)).value
    except nats.js.errors.KeyNotFoundError:
        paused = None
    return {"counts": counts, "tasks": sorted(map(tuple, rows)), "paused": paused}


def sendable(kind: str, fields: dict[str, Any], workspaces: Path) -> dict[str, Any]:
    if isinstance(fields.get("workspace"), str) and workspace_problem(fields["workspace"]) is None:
        fields = {**fields, "workspace": str(workspaces / uuid.uuid4().hex)}
    return fields


async def request(nc: NATS, subject: str, payload: bytes) -> CommandReply:
    msg = await nc.request(subject, payload, timeout=20)
    return CommandReply.model_validate_json(msg.data)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(command=commands)
async def test_every_generated_command_gets_a_command_reply_and_a_refusal_changes_nothing(
    stack: LiveStack, engine: AsyncEngine, tmp_path: Path, command: tuple[str, dict[str, Any]]
) -> None:
    kind, fields = command
    fields = sendable(kind, fields, tmp_path)
    payload = json.dumps(fields).encode()  # ensure_ascii: lone surrogates travel as \ud800 escapes
    nc = await nats.connect(stack.nats_url)
    try:
        before = await snapshot(nc, engine)
        reply = await request(nc, command_subject(kind) if kind.isidentifier() else f"wf.cmd.{kind}", payload)
        if not reply.ok:
            assert reply.error is not None
            assert reply.error.code != "internal", reply.error.message
            assert await snapshot(nc, engine) == before, (kind, fields, reply)
    finally:
        await nc.close()
    assert "Traceback" not in stack.orchestrator_log()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(COMMAND_TYPES), payload=raw_payloads)
async def test_bytes_that_are_not_a_command_are_refused_as_invalid(
    stack: LiveStack, engine: AsyncEngine, kind: str, payload: bytes
) -> None:
    nc = await nats.connect(stack.nats_url)
    try:
        before = await snapshot(nc, engine)
        reply = await request(nc, command_subject(kind), payload)
        if not reply.ok:
            assert reply.error is not None
            assert reply.error.code == "invalid", reply.error.message
            assert await snapshot(nc, engine) == before
    finally:
        await nc.close()
    assert "Traceback" not in stack.orchestrator_log()
