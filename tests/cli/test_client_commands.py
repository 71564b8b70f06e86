"""The client commands against the real board API and orchestrator (tests/fixtures/stack.py), run as
`wf` does: what they print, and what they did, read back from the API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Wf, run_wf
from tests.cli.pipeline import break_down, wait_task
from tests.fixtures.stack import LiveStack

Api = Callable[..., Any]


@pytest.fixture
def url(live_stack: LiveStack, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("WF_TOKEN", live_stack.token)
    return live_stack.url


@pytest.fixture
def api(live_stack: LiveStack) -> Api:
    """The board API as the test reads it: api("GET", path) → the JSON body (asserting success)."""

    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method, f"{live_stack.url}{path}", headers=live_stack.headers, timeout=30, **kwargs
        )
        assert response.status_code < 300, response.text
        return response.json()

    return call


@pytest.fixture
def project(api: Api, tmp_path: Path) -> str:
    """A project of this test alone (the stack is shared by the module)."""
    slug = f"p{uuid.uuid4().hex[:8]}"
    api("POST", "/api/projects", json={"slug": slug, "workspace": str(tmp_path / slug)})
    return slug


def idea(api: Api, project: str, text: str = "An app that lists things") -> str:
    api("POST", f"/api/projects/{project}/ideas", json={"text": text})
    tasks = api("GET", "/api/tasks", params={"project": project})
    return str(tasks[-1]["key"])


def at_gate(live_stack: LiveStack, api: Api, project: str, *titles: str) -> str:
    """An idea whose breakdown into `titles` waits for approval at the PM gate; returns its key."""
    key = idea(api, project)
    break_down(live_stack, project, key, *(titles or ("Make the list", "Share the list")))
    return key


def env(stack: LiveStack) -> dict[str, str]:
    return {"WF_TOKEN": stack.token}


# ---------------------------------------------------------------------------------- wf status


def test_status_json_has_exactly_the_documented_shape_in_pipeline_order(
    live_stack: LiveStack, api: Api, project: str
) -> None:
    key = at_gate(live_stack, api, project, "Upload photos", "Tag photos")
    assert run_wf("--url", live_stack.url, "approve", key, env=env(live_stack)).code == 0
    wait_task(live_stack, project, key, "pm", "waiting_subtasks")

    r = run_wf("--url", live_stack.url, "status", "--json", "--project", project, env=env(live_stack))

    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert set(data) == {"paused", "paused_projects", "paused_tasks", "pending_pushes", "tasks"}
    assert data["paused"] is False
    for t in data["tasks"]:
        assert set(t) == {"key", "title", "stage", "state", "project", "parent"}
    assert sorted(t["key"] for t in data["tasks"]) == ["T-001", "T-002", "T-003"]
    stages = [t["stage"] for t in data["tasks"]]
    order = ["backlog", "pm", "dev", "qa", "sec", "docs", "deploy", "testing", "done"]
    assert stages == sorted(stages, key=order.index)  # pipeline order
    child = next(t for t in data["tasks"] if t["key"] == "T-002")
    assert (child["title"], child["project"], child["parent"]) == ("Upload photos", project, "T-001")


def test_status_table_points_at_tasks_waiting_for_a_person(
    live_stack: LiveStack, api: Api, project: str, url: str, wf: Wf
) -> None:
    key = at_gate(live_stack, api, project)
    r = wf("--url", url, "status", "--project", project)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "orchestration: running"
    header = next(i for i, ln in enumerate(lines) if ln.startswith("STAGE"))
    row = next(ln for ln in lines[header + 1 :] if f" {key} " in f" {ln} ")
    assert row.split()[:3] == ["pm", key, "awaiting_approval"]
    assert f"{key} awaiting approval: wf approve {key}  or  wf reject {key} --reason ..." in r.out


def test_status_says_when_paused(url: str, wf: Wf) -> None:
    assert wf("--url", url, "pause").code == 0
    try:
        r = wf("--url", url, "status")
        assert r.code == 0
        assert "PAUSED" in r.out
        assert "wf resume" in r.out
    finally:
        assert wf("--url", url, "resume").code == 0
    assert "PAUSED" not in wf("--url", url, "status").out


def test_status_of_an_unknown_project_fails_naming_the_known_ones(project: str, url: str, wf: Wf) -> None:
    r = wf("--url", url, "status", "--project", "nope")
    assert r.code == 1
    assert "no project 'nope'" in r.err
    assert project in r.err


# ---------------------------------------------------------------------------------- errors


def test_unreachable_hub_gives_the_documented_message_and_exit_1(dead_url: str) -> None:
    r = run_wf("--url", dead_url, "status")
    assert r.code == 1
    assert r.err.strip() == (
        f"wf: error: cannot reach Workflow Hub at {dead_url} — is `wf start` running? (or set --url / WF_URL)"
    )


def test_wf_url_environment_variable_is_used(live_stack: LiveStack, dead_url: str) -> None:
    assert run_wf("status", env={"WF_URL": live_stack.url, **env(live_stack)}).code == 0
    # --url wins over WF_URL, before or after the command
    assert run_wf("status", "--url", dead_url, env={"WF_URL": live_stack.url}).code == 1


def test_default_url_is_local_port_8000() -> None:
    r = run_wf("pause")
    if r.code == 0:
        pytest.skip("something answers on 127.0.0.1:8000")
    assert "cannot reach Workflow Hub at http://127.0.0.1:8000" in r.err


def test_a_conflict_from_the_orchestrator_is_shown_as_its_message(
    live_stack: LiveStack, api: Api, project: str
) -> None:
    key = idea(api, project)  # waits for the PM: not at a gate
    r = run_wf("--url", live_stack.url, "approve", key, "--project", project, env=env(live_stack))
    assert r.code == 1
    assert r.err.startswith(f"wf: error: {key} is not waiting for approval")


def test_a_value_the_api_refuses_is_shown_naming_the_field(project: str, url: str, wf: Wf) -> None:
    r = wf("--url", url, "idea", "ab", "--project", project)  # the API wants 3 characters at least
    assert r.code == 1
    assert "body.text" in r.err
    assert "at least 3 characters" in r.err


def test_usage_errors_exit_2_without_calling_the_api(dead_url: str) -> None:
    # Against a URL nobody answers: calling the API would be exit 1, not 2.
    assert run_wf("--url", dead_url, "show", "not-a-key").code == 2
    assert run_wf("--url", dead_url, "reject", "T-001").code == 2  # --reason is required
    r = run_wf("--url", dead_url, "edit", "T-001")
    assert r.code == 2
    assert "nothing to change" in r.err
    assert run_wf("--url", dead_url, "idea", "x", "--priority", "11").code == 2
    assert run_wf("--url", dead_url, "frobnicate").code == 2


def test_version_flag() -> None:
    r = run_wf("--version")
    assert r.code == 0
    assert r.out.startswith("wf ")


# ---------------------------------------------------------------------------------- task key → project


def test_approve_finds_the_project_from_the_key_and_records_the_actor(
    live_stack: LiveStack, api: Api, project: str, url: str, wf: Wf
) -> None:
    key = at_gate(live_stack, api, project)
    r = wf("--url", url, "approve", key.lower(), "--project", project, "--note", "looks right")
    assert r.code == 0, r.err
    assert f"approved {key} ({project})" in r.out
    detail = api("GET", f"/api/projects/{project}/tasks/{key}")
    gate = next(h for h in detail["handoffs"] if h["requires_approval"])
    assert gate["approved_by"] == "human:owner"  # the token's holder (board.owner), not the OS user
    assert gate["decision_note"] == "looks right"


def test_a_key_in_two_projects_needs_project(
    live_stack: LiveStack, api: Api, tmp_path: Path, url: str, wf: Wf
) -> None:
    slugs = sorted(f"k{uuid.uuid4().hex[:8]}" for _ in range(2))
    for slug in slugs:
        api("POST", "/api/projects", json={"slug": slug, "workspace": str(tmp_path / slug)})
        idea(api, slug)
    r = wf("--url", url, "show", "T-001")
    assert r.code == 2
    assert ", ".join(slugs) in r.err
    assert "--project" in r.err
    r = wf("--url", url, "show", "T-001", "--project", slugs[1])
    assert r.code == 0, r.err
    assert f"[{slugs[1]}]" in r.out


def test_an_unknown_key_fails(url: str, wf: Wf) -> None:
    r = wf("--url", url, "show", "T-999999")
    assert r.code == 1
    assert "no task T-999999" in r.err


def test_an_unknown_project_given_with_a_key_shows_the_api_404(url: str, wf: Wf) -> None:
    r = wf("--url", url, "retry", "T-001", "--project", "nope")
    assert r.code == 1
    assert "nope" in r.err


# ---------------------------------------------------------------------------------- the other commands


def test_project_create_resolves_a_relative_workspace_against_the_current_directory(
    live_stack: LiveStack, api: Api, tmp_path: Path, url: str
) -> None:
    slug = f"c{uuid.uuid4().hex[:8]}"
    r = run_wf(
        "--url", url, "project", "create", slug, "--workspace", "ws", cwd=tmp_path, env=env(live_stack)
    )
    assert r.code == 0, r.err
    assert api("GET", f"/api/projects/{slug}")["workspace"] == str(tmp_path / "ws")
    assert (tmp_path / "ws" / ".git").is_dir()
    assert not (live_stack.tmp / "ws").exists()  # not where the services run
    two = f"d{uuid.uuid4().hex[:8]}"
    r = run_wf(
        "--url", url, "project", "create", two, "--workspace", str(tmp_path / "two"),
        "--name", "Two", "--test-command", "make test", env=env(live_stack),
    )  # fmt: skip
    assert r.code == 0, r.err
    shown = api("GET", f"/api/projects/{two}")
    assert (shown["name"], shown["test_command"]) == ("Two", "make test")
    r = run_wf("--url", url, "project", "list", env=env(live_stack))
    assert r.code == 0
    assert r.out.splitlines()[0].split() == ["SLUG", "NAME", "WORKSPACE", "TEST", "COMMAND"]
    assert two in r.out
    assert "make test" in r.out
    assert run_wf("--url", url, "project", "create", "Bad Slug", "--workspace", "/w").code == 2


def test_project_create_refuses_a_taken_workspace_naming_its_project(
    project: str, api: Api, url: str, wf: Wf
) -> None:
    workspace = api("GET", f"/api/projects/{project}")["workspace"]
    r = wf("--url", url, "project", "create", "another", "--workspace", workspace)
    assert r.code == 1
    assert f"'{project}'" in r.err


def test_idea_with_several_projects_asks_which(project: str, api: Api, url: str, wf: Wf) -> None:
    r = wf("--url", url, "idea", "Another one")
    assert r.code == 2
    assert "--project" in r.err
    r = wf("--url", url, "idea", "Another one", "--project", "nope")
    assert r.code == 1
    assert "no project 'nope'" in r.err
    r = wf("--url", url, "idea", "An app that lists things", "--project", project, "--priority", "8")
    assert r.code == 0, r.err
    assert "T-001" in r.out
    assert api("GET", "/api/tasks", params={"project": project})[0]["priority"] == 8


def test_edit_changes_only_the_given_fields(
    live_stack: LiveStack, api: Api, project: str, url: str, wf: Wf
) -> None:
    key = at_gate(live_stack, api, project, "Make the list", "Share the list", "Sort the list")
    assert wf("--url", url, "approve", key, "--project", project).code == 0
    wait_task(live_stack, project, key, "pm", "waiting_subtasks")
    r = wf(
        "--url", url, "edit", "T-004", "--project", project, "--title", "Sort it", "--criteria", "a works",
        "--criteria", "b works", "--priority", "2", "--blocked-by", "t-002", "T-003",
    )  # fmt: skip
    assert r.code == 0, r.err
    task = api("GET", f"/api/projects/{project}/tasks/T-004")
    assert task["title"] == "Sort it"
    assert task["acceptance_criteria"] == ["a works", "b works"]
    assert task["priority"] == 2
    assert task["blocked_by"] == ["T-002", "T-003"]
    assert task["description"] == "Sort the list."  # left as it was
    assert wf("--url", url, "edit", "T-004", "--blocked-by", "--project", project).code == 0
    assert api("GET", f"/api/projects/{project}/tasks/T-004")["blocked_by"] == []


def test_reject_and_feedback(live_stack: LiveStack, api: Api, project: str, url: str, wf: Wf) -> None:
    key = at_gate(live_stack, api, project)
    r = wf("--url", url, "reject", key, "--project", project, "--reason", "too big")
    assert r.code == 0, r.err
    gate = next(h for h in api("GET", f"/api/projects/{project}/tasks/{key}")["handoffs"] if h["rejected_by"])
    assert gate["decision_note"] == "too big"
    assert wf("--url", url, "feedback", key, "use sqlite", "-p", project).code == 0
    feedback = api("GET", f"/api/projects/{project}/tasks/{key}")["feedback"]
    assert [f["text"] for f in feedback][-1] == "use sqlite"
    r = wf("--url", url, "retry", key, "--project", project)  # it did not fail: the orchestrator says so
    assert r.code == 1
    assert key in r.err


def test_pause_and_resume(url: str, wf: Wf, api: Api) -> None:
    r = wf("--url", url, "pause")
    assert r.code == 0
    assert "paused" in r.out
    assert api("GET", "/api/control")["paused"] is True
    r = wf("--url", url, "resume")
    assert r.code == 0
    assert api("GET", "/api/control")["paused"] is False


def test_bugs_of_a_project_and_an_unknown_bug(project: str, url: str, wf: Wf) -> None:
    r = wf("--url", url, "bugs", "--project", project)
    assert r.code == 0, r.err
    assert "B-0" not in r.out
    r = wf("--url", url, "bug", "kill", "B-404", "--project", project)
    assert r.code == 1
    assert "B-404" in r.err


def test_show_renders_the_history(live_stack: LiveStack, api: Api, project: str, url: str, wf: Wf) -> None:
    key = at_gate(live_stack, api, project, "Upload photos", "Tag photos")
    assert wf("--url", url, "approve", key, "--project", project, "--note", "go").code == 0
    wait_task(live_stack, project, key, "pm", "waiting_subtasks")
    r = wf("--url", url, "show", "T-002", "--project", project)
    assert r.code == 0, r.err
    assert r.out.splitlines()[0].split() == ["T-002", "Upload", "photos", f"[{project}]"]
    assert "  1. Upload photos works" in r.out
    r = wf("--url", url, "show", key, "--project", project)
    assert "pm → backlog" in r.out or "→" in r.out
    assert "approved by human:owner" in r.out
    assert "Tasks made from it: T-002, T-003" in r.out
    r = wf("--url", url, "show", key, "--project", project, "--json")
    assert json.loads(r.out)["children"] == ["T-002", "T-003"]


# ---------------------------------------------------------------------------------- untrusted text


HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[31mRed\x1b[0m title\x08\x9b31m\u202eevil"


def test_model_written_text_reaches_the_terminal_without_control_characters(
    live_stack: LiveStack, api: Api, project: str
) -> None:
    at_gate(live_stack, api, project, HOSTILE, "A plain one")
    outputs = [
        run_wf("--url", live_stack.url, "status", "--project", project, env=env(live_stack)).out,
        run_wf("--url", live_stack.url, "show", "T-002", "--project", project, env=env(live_stack)).out,
    ]
    for out in outputs:
        for bad in ("\x1b", "\x07", "\x08", "\x9b", "\u202e"):
            assert bad not in out, (bad, out)
    assert "Red title" in outputs[1]
    # --json stays exact (escaped by JSON itself)
    r = run_wf("--url", live_stack.url, "show", "T-002", "--project", project, "--json", env=env(live_stack))
    assert "\x1b" not in r.out
    assert json.loads(r.out)["title"] == HOSTILE
