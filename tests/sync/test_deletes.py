"""Deletes: by default a delete on either side only unlinks (both items stay, nothing is made again);
with `propagate_deletes` a task cancelled here deletes its item there (GitHub: closed as not planned)
and an item deleted there cancels the task here, through the orchestrator's cancel_task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from wf_common.db.sync_tables import audit, links, mirror, outbox

from tests.orchestrator.hub import Hub, eventually
from tests.sync import views
from tests.sync.conftest import Fakes
from tests.sync.test_end_to_end import TASK, until


async def _draft_everywhere(hub: Hub, fakes: Fakes, n: int) -> None:
    await hub.cmd("submit_idea", project="demo", text="Deletes idea")
    pm = await hub.next_job("pm")
    await hub.breakdown(pm, TASK)
    await hub.wait_state("T-001", "pm", "awaiting_approval")
    await until(lambda: views.counts(fakes, "T-002")[:n] == [1] * n, "T-002 in every tracker")


async def _rows(database_url: str, query: Any) -> list[dict[str, Any]]:
    db = create_async_engine(database_url)
    try:
        async with db.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings()]
    finally:
        await db.dispose()


async def test_with_propagate_deletes_a_task_cancelled_here_is_deleted_or_closed_there(
    hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any], database_url: str
) -> None:
    await make_bridge(fakes.targets(propagate_deletes=True))
    await _draft_everywhere(hub, fakes, 4)
    [issue] = views.github_items(fakes.github, "T-002")

    await hub.cmd("cancel_task", project="demo", task_key="T-002", reason="not needed after all")

    await until(lambda: views.counts(fakes, "T-002") == [0, 0, 1, 0], "T-002 deleted in Asana, Jira, Linear")
    await until(lambda: fakes.github.issue(issue["number"])["state"] == "closed", "the GitHub issue closed")
    assert fakes.github.issue(issue["number"])["state_reason"] == "not_planned"

    await eventually(lambda: _none_linked(database_url, "T-002"), within=20, what="every link of T-002 ended")
    notes = await _rows(database_url, select(audit.c.target, audit.c.winner, audit.c.note))
    assert sorted((n["target"], n["winner"], n["note"]) for n in notes) == [
        ("asana", "local", "cancelled here: deleted in asana"),
        ("github", "local", "cancelled here: closed in github"),
        ("jira", "local", "cancelled here: deleted in jira"),
        ("linear", "local", "cancelled here: deleted in linear"),
    ]
    assert (await hub.task("T-002"))["state"] == "cancelled"


async def _none_linked(database_url: str, key: str) -> bool:
    rows = await _rows(
        database_url, select(links.c.id).where(links.c.task_key == key, links.c.unlinked_at.is_(None))
    )
    return not rows


async def test_with_propagate_deletes_an_item_deleted_there_cancels_the_task_here(
    hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any], database_url: str
) -> None:
    asana, jira = fakes.targets(propagate_deletes=True, reconcile_interval_seconds=1)[:2]
    await make_bridge([asana, jira])
    await _draft_everywhere(hub, fakes, 2)
    [task] = views.asana_items(fakes.asana, "T-002")

    fakes.asana.human_delete(task["gid"])

    cancelled = await hub.wait_state("T-002", "backlog", "cancelled", within=20)
    assert "was deleted in asana" in cancelled["status_reason"]
    [move] = [e for e in hub.events_of("task.state_changed", "T-002") if e.actor == "sync:asana"]
    assert move.task.state == "cancelled"
    # Cancelled here, so (opted in there too) deleted in Jira as well.
    await until(lambda: views.counts(fakes, "T-002")[:2] == [0, 0], "T-002 gone from Jira too")
    await eventually(lambda: _none_linked(database_url, "T-002"), within=20, what="both links ended")
    notes = await _rows(database_url, select(audit.c.target, audit.c.winner, audit.c.note))
    assert sorted((n["target"], n["winner"], n["note"]) for n in notes) == [
        ("asana", "remote", "deleted in the tracker: unlinked and cancelled here"),
        ("jira", "local", "cancelled here: deleted in jira"),
    ]


async def test_by_default_deletes_only_unlink_and_nothing_is_made_again(
    hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any], database_url: str
) -> None:
    # Asana reports the delete as an event: no fast reconcile, so a drained outbox stays drained.
    asana, jira = fakes.targets()[:2]
    await make_bridge([asana, jira])
    await _draft_everywhere(hub, fakes, 2)
    [task] = views.asana_items(fakes.asana, "T-002")

    fakes.asana.human_delete(task["gid"])
    await eventually(
        lambda: _linked_targets(database_url, "T-002", ["jira"]), within=20, what="the Asana link ended"
    )
    assert (await hub.task("T-002"))["state"] == "draft"  # nothing happened to the task here

    # A later edit here syncs to Jira and does not make a new Asana task.
    await hub.cmd("edit_task", project="demo", task_key="T-002", title="Renamed after the delete")
    await until(lambda: views.titles(fakes, "T-002")[1] == "Renamed after the delete", "the rename in Jira")
    await eventually(
        lambda: _drained(database_url, "T-002"), within=20, what="the bridge to finish its writes"
    )
    assert views.counts(fakes, "T-002")[:2] == [0, 1]

    # Cancelled here: the Jira issue stays, still linked (no propagation asked for).
    await hub.cmd("cancel_task", project="demo", task_key="T-002", reason="dropped")
    await eventually(lambda: _cancel_mirrored(database_url, "T-002"), within=20, what="the cancel seen")
    await eventually(
        lambda: _drained(database_url, "T-002"), within=20, what="the bridge to finish its writes"
    )
    assert views.counts(fakes, "T-002")[:2] == [0, 1]
    assert await _linked_targets(database_url, "T-002", ["jira"])
    notes = await _rows(database_url, select(audit.c.target, audit.c.note))
    assert [(n["target"], n["note"]) for n in notes] == [("asana", "deleted in the tracker: unlinked")]


async def _linked_targets(database_url: str, key: str, expected: list[str]) -> bool:
    rows = await _rows(
        database_url, select(links.c.target).where(links.c.task_key == key, links.c.unlinked_at.is_(None))
    )
    return sorted(r["target"] for r in rows) == expected


async def _drained(database_url: str, key: str) -> bool:
    rows = await _rows(
        database_url, select(outbox.c.id).where(outbox.c.task_key == key, outbox.c.status == "pending")
    )
    return not rows


async def _cancel_mirrored(database_url: str, key: str) -> bool:
    rows = await _rows(database_url, select(mirror.c.snapshot).where(mirror.c.task_key == key))
    return bool(rows) and rows[0]["snapshot"]["state"] == "cancelled"
