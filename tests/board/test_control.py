"""/api/control and /api/runners read what the orchestrator and runners keep in NATS KV."""

from __future__ import annotations

import os

import httpx
from nats.js import JetStreamContext
from wf_common.jobs import RunnerHeartbeat
from wf_common.subjects import CONTROL_BUCKET, PAUSED_KEY, RUNNERS_BUCKET


async def test_paused_follows_the_control_bucket(client: httpx.AsyncClient, js: JetStreamContext) -> None:
    assert (await client.get("/api/control")).json()["paused"] is False  # never written yet
    kv = await js.key_value(CONTROL_BUCKET)

    await kv.put(PAUSED_KEY, b"true")
    assert (await client.get("/api/control")).json()["paused"] is True
    assert (await client.get("/api/board")).json()["paused"] is True

    await kv.put(PAUSED_KEY, b"false")
    assert (await client.get("/api/control")).json()["paused"] is False

    await kv.put(PAUSED_KEY, b'{"paused": true}')
    assert (await client.get("/api/control")).json()["paused"] is True

    await kv.delete(PAUSED_KEY)
    assert (await client.get("/api/control")).json()["paused"] is False


async def test_runners_lists_live_heartbeats(client: httpx.AsyncClient, js: JetStreamContext) -> None:
    assert (await client.get("/api/runners")).json() == []
    kv = await js.key_value(RUNNERS_BUCKET)
    for runner_id, stages in (("runner-b", ["qa"]), ("runner-a", ["dev", "qa"])):
        beat = RunnerHeartbeat(
            runner_id=runner_id, stages=stages, pid=os.getpid(), host="box", busy=["p/T-001/dev/1"]
        )
        await kv.put(runner_id, beat.model_dump_json().encode())
    await kv.put("runner-broken", b"not json")

    runners = (await client.get("/api/runners")).json()
    assert [(r["runner_id"], r["stages"], r["busy"]) for r in runners] == [
        ("runner-a", ["dev", "qa"], ["p/T-001/dev/1"]),
        ("runner-b", ["qa"], ["p/T-001/dev/1"]),
    ]

    await kv.delete("runner-b")  # a runner that stopped cleanly
    assert [r["runner_id"] for r in (await client.get("/api/runners")).json()] == ["runner-a"]
