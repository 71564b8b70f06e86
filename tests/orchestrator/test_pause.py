"""Pause and resume: nothing new starts while paused, running work finishes, resume picks up the queue."""

from __future__ import annotations

from wf_common.subjects import CONTROL_BUCKET, PAUSED_KEY

from tests.orchestrator.hub import Hub, eventually


async def test_pause_stops_dispatch_running_jobs_finish_and_resume_restarts(hub: Hub) -> None:
    await hub.cmd("submit_idea", project="demo", text="First idea")
    running = await hub.next_job("pm")
    assert await hub.cmd("pause", actor="ann") == {"paused": True}
    await hub.cmd("submit_idea", project="demo", text="Second idea")

    # The job that was running finishes and its result is applied; nothing new is dispatched.
    await hub.finish(running, "fail", summary="the idea is unclear")
    await hub.wait_state("T-001", "pm", "needs_human")
    await hub.no_job("pm", wait=0.5)
    assert await hub.state("T-002") == ("pm", "queued")

    # The flag lives in NATS, not in the process: a restart keeps it.
    await hub.restart()
    await hub.no_job("pm", wait=0.3)

    assert await hub.cmd("resume", actor="ann") == {"paused": False}
    assert (await hub.next_job("pm")).task.key == "T-002"
    changes = [(e.paused, e.actor) for e in hub.events_of("control.changed")]
    assert changes == [(True, "ann"), (False, "ann")]


async def test_the_nats_kv_flag_pauses_like_the_command(hub: Hub) -> None:
    assert hub.js is not None
    kv = await hub.js.key_value(CONTROL_BUCKET)
    await kv.put(PAUSED_KEY, b"true")  # nats kv put wf_control paused true
    await eventually(lambda: _paused_event(hub, True), what="the orchestrator to see the pause")
    await hub.cmd("submit_idea", project="demo", text="An idea")
    await hub.no_job("pm", wait=0.5)
    await kv.put(PAUSED_KEY, b"false")
    assert (await hub.next_job("pm")).task.key == "T-001"


async def _paused_event(hub: Hub, paused: bool) -> bool:
    return any(e.paused == paused for e in hub.events_of("control.changed"))
