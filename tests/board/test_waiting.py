"""A job waiting for an unreachable model server says so where a user looks: `wf status`, `wf show` and
the board's task page, against the real orchestrator and board API (a runner's `execution.waiting`)."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext
from wf_cli.main import main as wf_main
from wf_common import subjects
from wf_common.events import ExecutionWaiting
from wf_common.jobs import Job
from wf_orchestrator.app import Orchestrator

from tests.board.conftest import API_TOKEN, new_project
from tests.orchestrator.hub import eventually

REASON = "waiting for the model server at http://127.0.0.1:9, retry 3 in 30 s"


def run_wf(*args: str) -> tuple[int, str]:
    """`wf ARGS` in this process (the console script's code); (exit code, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = wf_main(list(args))
    return code, out.getvalue() + err.getvalue()


async def test_a_job_waiting_for_the_model_server_says_so_in_status_show_and_the_board(
    live_url: str,
    client: httpx.AsyncClient,
    orchestrator: Orchestrator,
    js: JetStreamContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await new_project(client, tmp_path / "demo", slug="demo")
    assert (await client.post("/api/projects/demo/ideas", json={"text": "Login page"})).status_code == 201
    # Play the runner that took the PM job and cannot reach its model server.
    pull = await js.pull_subscribe_bind(durable=subjects.job_consumer("pm"), stream=subjects.JOBS_STREAM)
    [msg] = await pull.fetch(1, timeout=10)
    await msg.ack()
    job = Job.model_validate_json(msg.data)
    waiting = ExecutionWaiting(
        project="demo",
        task_key=job.task.key,
        execution_id=job.job_id,
        reason="could not reach the Ollama server at http://127.0.0.1:9: connection refused",
        url="http://127.0.0.1:9",
        retry=3,
        retry_in_seconds=30,
    )
    await js.publish(waiting.subject(), waiting.model_dump_json().encode())

    async def says_so() -> bool:
        [task] = (await client.get("/api/tasks", params={"project": "demo"})).json()
        return bool(task["status_reason"] == REASON)

    await eventually(says_so, what="the task to say it waits for the model server")
    monkeypatch.setenv("WF_TOKEN", API_TOKEN)
    code, status = await asyncio.to_thread(run_wf, "--url", live_url, "status", "--project", "demo")
    assert code == 0, status
    assert f"{job.task.key}: {REASON}" in status
    code, shown = await asyncio.to_thread(run_wf, "--url", live_url, "show", job.task.key)
    assert code == 0, shown
    assert REASON in shown
    page = await client.get(f"/ui/projects/demo/tasks/{job.task.key}")
    assert page.status_code == 200
    assert REASON in page.text
