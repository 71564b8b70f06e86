"""The bridge with the real stack (orchestrator, NATS, PostgreSQL) and all four tracker fakes: a task
made locally appears everywhere, follows the pipeline there, and edits and comments travel back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.orchestrator.hub import Hub, eventually
from tests.sync import views
from tests.sync.conftest import Fakes

TASK = {
    "title": "Add function add",
    "description": "add(a, b)",
    "acceptance_criteria": ["add(2, 3) == 5"],
    "priority": 5,
}


async def until(check: Callable[[], Any], what: str, within: float = 20.0) -> Any:
    async def probe() -> Any:
        return check()

    return await eventually(probe, within=within, what=what, every=0.05)


async def test_a_local_task_lives_in_all_four_trackers_and_changes_there_come_back(
    hub: Hub, fakes: Fakes, make_bridge: Callable[..., Any]
) -> None:
    await make_bridge(fakes.targets())
    await hub.cmd("submit_idea", project="demo", text="Calculator library\nwith add")
    await until(lambda: views.stages(fakes, "T-001") == ["pm"] * 4, "the idea in pm everywhere")

    pm = await hub.next_job("pm")
    await hub.breakdown(pm, TASK)
    await hub.wait_state("T-001", "pm", "awaiting_approval")
    await until(lambda: views.stages(fakes, "T-002") == ["backlog"] * 4, "T-002 in backlog everywhere")
    assert views.titles(fakes, "T-002") == ["Add function add"] * 4

    await hub.cmd("approve", project="demo", task_key="T-001")
    dev = await hub.next_job("dev")
    await until(lambda: views.stages(fakes, "T-002") == ["dev"] * 4, "T-002 in dev everywhere")
    await hub.finish(dev, summary="implemented add")
    await hub.next_job("qa")
    # Jira reaches QA from Backlog only through its workflow's transitions, one hop at a time.
    await until(lambda: views.stages(fakes, "T-002") == ["qa"] * 4, "T-002 in qa everywhere")
    assert fakes.jira.calls(r"POST /rest/api/3/issue/\d+/transitions")

    # A human renames it in Jira: the task here is renamed, and so are the other trackers' items.
    [issue] = views.jira_items(fakes.jira, "T-002")
    fakes.jira.human_update(issue["id"], summary="Add function add (ints only)")

    async def renamed() -> bool:
        return bool((await hub.task("T-002"))["title"] == "Add function add (ints only)")

    await eventually(renamed, within=20, what="the Jira rename to reach the task")
    await until(
        lambda: views.titles(fakes, "T-002") == ["Add function add (ints only)"] * 4, "the rename everywhere"
    )

    # A comment made here reaches every tracker; one made in GitHub reaches the task and the others.
    await hub.cmd("add_feedback", project="demo", task_key="T-002", text="Please handle negative numbers")
    await until(
        lambda: all(any("negative numbers" in c for c in cs) for cs in views.comment_texts(fakes, "T-002")),
        "the local comment in all four trackers",
    )
    [gh] = views.github_items(fakes.github, "T-002")
    fakes.github.human_comment(gh["number"], "Looks good from the GitHub side")
    await until(
        lambda: any("GitHub side" in e.text for e in hub.events_of("feedback.added", "T-002")),
        "the GitHub comment in the task's feedback",
    )
    await until(
        lambda: (
            [any("GitHub side" in c for c in cs) for cs in views.comment_texts(fakes, "T-002")]
            == [True, True, True, True]
        ),
        "the GitHub comment in the other trackers",
    )
    # Every task exists once per tracker, and the GitHub comment came back only once.
    for key in ("T-001", "T-002"):
        assert views.counts(fakes, key) == [1, 1, 1, 1]
    assert sum("GitHub side" in e.text for e in hub.events_of("feedback.added", "T-002")) == 1
    # Pull requests in GitHub's issue list are never taken for tasks.
    assert all("pull_request" not in i for i in views.github_items(fakes.github, "T-002"))
