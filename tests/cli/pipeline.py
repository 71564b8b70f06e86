"""Move real tasks along for the `wf` tests: play an agent runner over the stack's JetStream (take the
stage's job, publish its Result: the wire contract between the orchestrator and the runners)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import nats
from wf_common import bus, subjects
from wf_common.jobs import Breakdown, Job, Result

from tests.fixtures.stack import LiveStack


async def _finish(nats_url: str, stage: str, project: str, key: str, **result: Any) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        pull = await js.pull_subscribe_bind(durable=subjects.job_consumer(stage), stream=subjects.JOBS_STREAM)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                msgs = await pull.fetch(1, timeout=2)
            except nats.errors.TimeoutError:
                continue
            await msgs[0].ack()
            job = Job.model_validate_json(msgs[0].data)
            if (job.project.slug, job.task.key) != (project, key):
                # A job another test left behind: end it (its task fails), so it holds no WIP slot.
                left = Result.answering(job, "error", "left behind by another test")
                await bus.publish(
                    js, subjects.result_subject(stage), left, msg_id=f"{job.idempotency_key}/result"
                )
                continue
            status = result.pop("status", "pass")
            answer = Result.answering(job, status, result.pop("summary", f"{stage} {status}"), **result)
            await bus.publish(
                js, subjects.result_subject(stage), answer, msg_id=f"{job.idempotency_key}/result"
            )
            return
        raise AssertionError(f"no {stage} job for {project} {key} within 90 s")
    finally:
        await nc.close()


def wait_task(stack: LiveStack, project: str, key: str, stage: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = httpx.get(
            f"{stack.url}/api/projects/{project}/tasks/{key}", headers=stack.headers, timeout=10
        )
        if found.status_code == 200:
            task = found.json()
            if (task["stage"], task["state"]) == (stage, state):
                return task
        time.sleep(0.05)
    raise AssertionError(
        f"{project} {key} is not {state} in {stage}: {task.get('stage')}/{task.get('state')}"
    )


def break_down(stack: LiveStack, project: str, key: str, *titles: str) -> dict[str, Any]:
    """The PM breaks the idea `key` down into tasks with `titles`; the breakdown waits at its gate."""
    plan = Breakdown.model_validate(
        {
            "tasks": [
                {"title": t, "description": f"{t}.", "acceptance_criteria": [f"{t} works"], "priority": 5}
                for t in titles
            ]
        }
    )
    asyncio.run(_finish(stack.nats_url, "pm", project, key, summary="broke it down", breakdown=plan))
    return wait_task(stack, project, key, "pm", "awaiting_approval")
