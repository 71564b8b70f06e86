"""Property tests: the three-way merge always leaves both sides equal to what it records as agreed;
and random interleavings of local edits, remote edits and faults against the real stack converge on
every mapped field, with a bounded number of writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wf_sync_bridge.control import status
from wf_sync_bridge.fields import FIELDS, parse_body
from wf_sync_bridge.merge import merge

from tests.orchestrator.hub import Hub, eventually
from tests.sync import views
from tests.sync.conftest import Fakes
from tests.sync.test_end_to_end import TASK

T0 = datetime(2026, 1, 1, tzinfo=UTC)
keys = st.lists(st.sampled_from(["T-001", "T-002", "T-003", "T-004"]), unique=True, max_size=3).map(sorted)
value = {
    "title": st.sampled_from(["a", "b", "c"]),
    "description": st.sampled_from(["", "x", "y"]),
    "acceptance_criteria": st.lists(st.sampled_from(["p", "q"]), max_size=2),
    "priority": st.integers(1, 10),
    "blocked_by": keys,
    "stage": st.sampled_from(["backlog", "dev", "qa"]),
}
side = st.fixed_dictionaries(value)


@given(local=side, remote=side, agreed=st.one_of(st.just({}), side), skew=st.integers(-5, 5))
def test_after_a_merge_both_sides_hold_what_it_records_as_agreed(
    local: dict[str, Any], remote: dict[str, Any], agreed: dict[str, Any], skew: int
) -> None:
    m = merge(local, remote, agreed, local_at=T0, remote_at=T0 + timedelta(seconds=skew))
    assert {**local, **m.pull} == m.agreed
    assert {**remote, **m.push} == m.agreed
    for f in FIELDS:
        if f == "blocked_by":
            continue
        if agreed and local[f] == agreed[f]:
            assert m.agreed[f] == remote[f]  # only the remote changed it (or nobody did)
        elif agreed and remote[f] == agreed[f]:
            assert m.agreed[f] == local[f]
    if agreed:
        # A key both kept stays; one either side removed is gone.
        both = set(local["blocked_by"]) & set(remote["blocked_by"])
        removed = set(agreed["blocked_by"]) - (set(local["blocked_by"]) & set(remote["blocked_by"]))
        assert both <= set(m.agreed["blocked_by"])
        assert not (removed - both) & set(m.agreed["blocked_by"])


step = st.one_of(
    st.tuples(st.just("local_title"), st.sampled_from(["Alpha", "Beta", "Gamma"])),
    st.tuples(st.just("local_priority"), st.integers(1, 10)),
    st.tuples(st.just("remote_title"), st.sampled_from(["Delta", "Epsilon"])),
    st.tuples(st.just("remote_priority"), st.integers(1, 10)),
    st.tuples(st.just("fault"), st.sampled_from([429, 500, 502])),
)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=2, max_size=6))
async def test_random_edits_on_both_sides_with_faults_converge(
    steps: list[tuple[str, Any]], hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any]
) -> None:
    # One bridge for all examples of this test (the fixtures are made once per test, not per example).
    if not hasattr(fakes, "bridge"):
        fakes.bridge = await make_bridge([fakes.targets()[2]])  # type: ignore[attr-defined]
    bridge = fakes.bridge  # type: ignore[attr-defined]
    reply = await hub.cmd("submit_idea", project="demo", text="Property idea")
    key = reply["task"]["key"]
    await _until(lambda: len(views.github_items(fakes.github, key)) == 1, f"{key} in GitHub")
    [issue] = views.github_items(fakes.github, key)
    number = issue["number"]
    writes_before = len(fakes.github.writes())
    for kind, v in steps:
        if kind == "local_title":
            await hub.cmd("edit_task", project="demo", task_key=key, title=v)
        elif kind == "local_priority":
            await hub.cmd("edit_task", project="demo", task_key=key, priority=v)
        elif kind == "remote_title":
            fakes.github.human_update(number, title=v)
        elif kind == "remote_priority":
            body = fakes.github.issue(number)["body"]
            old = parse_body(body)["priority"]
            fakes.github.human_update(number, body=body.replace(f"Priority: {old}", f"Priority: {v}"))
        else:
            fakes.github.fail("(PATCH|GET) /repos/acme/app/issues/.*", status=v, retry_after=0.2)
        await asyncio.sleep(0)

    async def converged() -> bool:
        t = await hub.task(key)
        remote = fakes.github.issue(number)
        fields = parse_body(remote["body"] or "")
        return (
            (t["title"], t["priority"], t["description"])
            == (
                remote["title"],
                fields.get("priority"),
                fields["description"],
            )
            and not fakes.github.faults
            and (await status(bridge))[0]["pending"] == 0
        )

    await eventually(converged, within=30, what=f"{key} to converge after {steps}")
    # Each edit costs at most a few writes (the update, a conflict note), never a ping-pong.
    assert len(fakes.github.writes()) - writes_before <= 3 * len(steps) + 2


async def _until(check: Callable[[], Any], what: str) -> None:
    async def probe() -> Any:
        return check()

    await eventually(probe, within=20, what=what)


__all__ = ["TASK"]
