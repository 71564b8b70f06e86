"""Files a stage attaches to its result (E2E screenshots, logs) are stored with the bug it raises,
and findings and a `skipped` note travel on with the handoff."""

from __future__ import annotations

import base64

from sqlalchemy import select
from wf_common.db.tables import attachments
from wf_common.jobs import Finding, ResultFile

from tests.orchestrator.hub import Hub

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
TASK = {"title": "Add page", "description": "a page", "acceptance_criteria": ["it shows"], "priority": 5}


def file(name: str, data: bytes, ctype: str) -> ResultFile:
    return ResultFile(
        filename=name, content_type=ctype, content_b64=base64.b64encode(data).decode(), size=len(data)
    )


async def test_a_failed_stage_attaches_its_files_to_the_bug(hub: Hub) -> None:
    await hub.cmd("submit_idea", project="demo", text="A page")
    await hub.breakdown(await hub.next_job("pm"), TASK)
    await hub.wait_state("T-001", "pm", "awaiting_approval")
    await hub.cmd("approve", project="demo", task_key="T-001", actor="alice")
    await hub.finish(await hub.next_job("dev"), summary="made the page")
    qa = await hub.next_job("qa")
    low = Finding(
        rule="B404", path="app/x.py", line=1, message="import subprocess", severity="low", tool="bandit"
    )
    await hub.finish(
        qa,
        "fail",
        summary="E2E failed: the heading is wrong",
        files=[
            file("failure.png", PNG, "image/png"),
            file("e2e-output.txt", b"FAILED heading", "text/plain"),
        ],
        findings=[low],
    )
    rework = await hub.next_job("dev")
    assert rework.bugs[0].reproduction["findings"][0]["tool"] == "bandit"
    [bug] = await hub.bugs("T-002")
    async with hub.db.connect() as conn:
        rows = (
            (
                await conn.execute(
                    select(attachments).where(attachments.c.bug_id == bug["id"]).order_by(attachments.c.id)
                )
            )
            .mappings()
            .all()
        )
    assert [(r["filename"], r["content_type"], bytes(r["content"])) for r in rows] == [
        ("failure.png", "image/png", PNG),
        ("e2e-output.txt", "text/plain", b"FAILED heading"),
    ]


async def test_a_skipped_check_is_recorded_on_the_handoff(hub: Hub) -> None:
    await hub.cmd("submit_idea", project="demo", text="A page")
    await hub.breakdown(await hub.next_job("pm"), TASK)
    await hub.wait_state("T-001", "pm", "awaiting_approval")
    await hub.cmd("approve", project="demo", task_key="T-001", actor="alice")
    await hub.finish(await hub.next_job("dev"), skipped="skipped: no E2E command configured")
    qa = await hub.next_job("qa")
    assert qa.handoff["skipped"] == "skipped: no E2E command configured"
    [dev] = [e for e in await hub.executions("T-002") if e["stage"] == "dev"]
    assert dev["result_details"]["skipped"] == "skipped: no E2E command configured"
