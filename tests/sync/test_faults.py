"""Faults between the bridge and the trackers: rate limits, server errors, a create whose answer is
lost, an expired Asana sync token, a stage missing remotely, an unreachable Jira status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from wf_common.db.sync_tables import audit, outbox
from wf_common.errors import ConfigError

from tests.fakes.asana import FakeAsana
from tests.orchestrator.hub import Hub, eventually
from tests.sync import views
from tests.sync.conftest import STAGES, Fakes
from tests.sync.test_end_to_end import TASK, until


async def test_rate_limits_and_server_errors_are_waited_out_without_duplicates(
    hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any]
) -> None:
    fakes.asana.fail("POST /tasks$", status=429, retry_after=0.5)
    fakes.jira.fail("POST /rest/api/3/issue$", status=503, times=2)
    fakes.github.fail("POST /repos/acme/app/issues$", status=429, retry_after=0.3)
    fakes.linear.fail("POST /graphql", status=500)
    bridge = await make_bridge(fakes.targets())
    await hub.cmd("submit_idea", project="demo", text="Rate limited idea")
    await until(lambda: views.stages(fakes, "T-001") == ["pm"] * 4, "the idea in every tracker", within=30)
    assert views.counts(fakes, "T-001") == [1, 1, 1, 1]
    # Asana was asked again only after its Retry-After.
    posts = fakes.asana.calls("POST /tasks$")
    assert [p.status for p in posts] == [429, 201]

    async def all_linked() -> dict[str, Any] | None:
        status = {s["target"]: s for s in await _status(bridge)}
        return status if all(s["linked"] == 1 for s in status.values()) else None

    status = await eventually(all_linked, within=10, what="every tracker's item linked")
    assert status["asana"]["rate_limited"] == 1
    assert status["jira"]["failures"] == 2
    assert [(s["dead"], s["linked"]) for s in status.values()] == [(0, 1)] * 4


async def _status(bridge: Any) -> list[dict[str, Any]]:
    from wf_sync_bridge.control import status

    rows: list[dict[str, Any]] = await status(bridge)
    return rows


async def test_a_create_whose_answer_is_lost_is_found_by_its_marker_not_made_twice(
    hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any]
) -> None:
    # Each tracker does the create, then answers after the bridge's 3 s timeout.
    fakes.asana.fail("POST /tasks$", stall_after=4)
    fakes.jira.fail("POST /rest/api/3/issue$", stall_after=4)
    fakes.github.fail("POST /repos/acme/app/issues$", stall_after=4)
    fakes.linear.fail("POST /graphql", stall_after=4)
    await make_bridge(fakes.targets())
    await hub.cmd("submit_idea", project="demo", text="Slow tracker idea")
    await until(lambda: views.stages(fakes, "T-001") == ["pm"] * 4, "the idea in every tracker", within=40)
    await until(lambda: views.counts(fakes, "T-001") == [1, 1, 1, 1], "one item each", within=5)
    # Jira found its issue by label and property; Linear by the client-supplied id.
    assert fakes.jira.calls("POST /rest/api/3/search/jql")
    assert len([r for r in fakes.linear.calls("POST /graphql") if "issueCreate" in str(r.body)]) == 1


async def test_an_expired_asana_sync_token_means_a_full_resync_and_nothing_is_missed(
    hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any]
) -> None:
    await make_bridge([fakes.targets()[0]])
    await hub.cmd("submit_idea", project="demo", text="Asana idea")
    await until(lambda: len(views.asana_items(fakes.asana, "T-001")) == 1, "the idea in Asana")
    await until(lambda: len(fakes.asana.sync_tokens) > 1, "a few polls with sync tokens")
    fakes.asana.expire_sync_tokens()
    [task] = views.asana_items(fakes.asana, "T-001")
    fakes.asana.human_update(task["gid"], name="Asana idea, renamed")

    async def renamed() -> bool:
        return bool((await hub.task("T-001"))["title"] == "Asana idea, renamed")

    await eventually(renamed, within=20, what="the rename after the token expired")

    # The rename may also arrive with a hub-driven sync of T-001; the expired token must still be
    # noticed and answered with a full resync on a fresh token, after which polling goes on.
    def expired() -> int:
        return len([c for c in fakes.asana.calls("GET /events") if c.status == 412])

    await until(lambda: expired() >= 2, "the expired token answered with 412", within=20)
    polls = len(fakes.asana.calls("GET /events"))
    await until(
        lambda: any(c.status == 200 for c in fakes.asana.calls("GET /events")[polls:]),
        "polling on with the fresh token",
        within=20,
    )


async def test_a_stage_missing_in_the_tracker_is_a_clear_error_at_start(
    fakes: Fakes, make_bridge: Callable[..., Any]
) -> None:
    lacking = FakeAsana(sections=[s for s in STAGES if s != "qa"])
    lacking.start()
    try:
        target = {**fakes.targets()[0], "base_url": lacking.url, "project_gid": lacking.project_gid}
        with pytest.raises(ConfigError, match=r"sync_to\[asana\].*no section\(s\) \['qa'\]"):
            await make_bridge([target])
    finally:
        lacking.stop()


async def test_an_unreachable_jira_status_is_reported_not_forced(
    hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any], database_url: str
) -> None:
    fakes.jira.unreachable.add("Dev")  # no transition leads there: QA and beyond are cut off too
    await make_bridge([fakes.targets()[1]])
    await hub.cmd("submit_idea", project="demo", text="Jira idea")
    pm = await hub.next_job("pm")
    await hub.breakdown(pm, {**TASK, "title": "Blocked by the workflow"})
    await hub.wait_state("T-001", "pm", "awaiting_approval")
    await hub.cmd("approve", project="demo", task_key="T-001")
    db = create_async_engine(database_url)
    try:

        async def dead() -> Any:
            async with db.connect() as conn:
                return (
                    await conn.execute(select(outbox.c.last_error).where(outbox.c.status == "dead"))
                ).scalar()

        error = await eventually(dead, within=20, what="the move to be dead-lettered")
        assert "'Dev' cannot be reached" in error
        # It went as far as the workflow allows and stays there; nothing pretends it reached Dev.
        assert views.stages(fakes, "T-002")[1] in ("backlog", "pm")
        async with db.connect() as conn:
            assert (await conn.execute(select(audit))).first() is None
    finally:
        await db.dispose()
