"""The client commands against a fake board API on a real socket, run as real `wf` processes."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest

from tests.cli.conftest import Wf, run_wf
from tests.cli.fake_board import FakeBoard, error

# ---------------------------------------------------------------------------------- wf status


def test_status_json_has_exactly_the_documented_shape_in_pipeline_order(board: FakeBoard) -> None:
    board.paused = True
    board.add_task("listsnap", "T-003", stage="qa", state="running", title="Upload photos", parent="T-001")
    board.add_task("listsnap", "T-001", stage="backlog", state="waiting_subtasks", title="The idea")
    board.add_task(
        "listsnap", "T-002", stage="pm", state="awaiting_approval", title="Breakdown", parent="T-001"
    )

    r = run_wf("--url", board.url, "status", "--json")

    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert set(data) == {"paused", "paused_projects", "paused_tasks", "pending_pushes", "tasks"}
    assert data["paused"] is True
    assert [t["key"] for t in data["tasks"]] == ["T-001", "T-002", "T-003"]  # backlog, pm, qa
    for t in data["tasks"]:
        assert set(t) == {"key", "title", "stage", "state", "project", "parent"}
    assert data["tasks"][2] == {
        "key": "T-003",
        "title": "Upload photos",
        "stage": "qa",
        "state": "running",
        "project": "listsnap",
        "parent": "T-001",
    }


def test_status_table_groups_by_stage_and_points_at_tasks_waiting_for_a_person(
    board: FakeBoard, wf: Wf
) -> None:
    board.add_task("listsnap", "T-004", stage="done", state="done", title="Shipped")
    board.add_task("listsnap", "T-002", stage="dev", state="running", title="Code it")
    board.add_task("listsnap", "T-003", stage="dev", state="failed", title="Broken")
    board.add_task("listsnap", "T-001", stage="pm", state="awaiting_approval", title="Plan")

    r = wf("--url", board.url, "status")

    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "orchestration: running"
    header = next(i for i, ln in enumerate(lines) if ln.startswith("STAGE"))
    rows = lines[header + 1 : header + 5]
    assert [row.split()[0] for row in rows] == ["pm", "dev", "T-003", "done"]  # stage shown once per group
    assert rows[1].split()[:3] == ["dev", "T-002", "running"]
    # columns line up: every KEY starts at the same offset
    assert len({row.index("T-00") for row in rows}) == 1
    assert "T-001 awaiting approval: wf approve T-001  or  wf reject T-001 --reason ..." in r.out
    assert "T-003 failed: wf retry T-003" in r.out


def test_status_says_when_paused(board: FakeBoard, wf: Wf) -> None:
    board.paused = True
    r = wf("--url", board.url, "status")
    assert r.code == 0
    assert "PAUSED" in r.out
    assert "wf resume" in r.out


def test_status_of_an_unknown_project_fails_naming_the_known_ones(board: FakeBoard, wf: Wf) -> None:
    board.add_project("listsnap")
    r = wf("--url", board.url, "status", "--project", "nope")
    assert r.code == 1
    assert "no project 'nope'" in r.err
    assert "listsnap" in r.err


# ---------------------------------------------------------------------------------- errors


def test_unreachable_hub_gives_the_documented_message_and_exit_1(dead_url: str) -> None:
    r = run_wf("--url", dead_url, "status")
    assert r.code == 1
    assert r.err.strip() == (
        f"wf: error: cannot reach Workflow Hub at {dead_url} — is `wf start` running? (or set --url / WF_URL)"
    )


def test_wf_url_environment_variable_is_used(board: FakeBoard, dead_url: str) -> None:
    assert run_wf("status", env={"WF_URL": board.url}).code == 0
    assert board.paths()[-1] == "GET /api/control"
    # --url wins over WF_URL, before or after the command
    assert run_wf("status", "--url", dead_url, env={"WF_URL": board.url}).code == 1


def test_default_url_is_local_port_8000() -> None:
    r = run_wf("pause")
    if r.code == 0:
        pytest.skip("something answers on 127.0.0.1:8000")
    assert "cannot reach Workflow Hub at http://127.0.0.1:8000" in r.err


def test_conflict_from_the_api_is_shown_as_its_message(board: FakeBoard) -> None:
    board.add_task("listsnap", "T-002", stage="dev", state="running")
    r = run_wf("--url", board.url, "approve", "T-002")
    assert r.code == 1
    assert r.err.strip() == "wf: error: task T-002 is not waiting for approval (it is running)"


def test_fastapi_style_errors_are_readable(board: FakeBoard, wf: Wf) -> None:
    board.override("GET", "/api/control", 404, {"detail": "Not Found"})
    r = wf("--url", board.url, "status")
    assert r.code == 1
    assert "Not Found" in r.err
    assert "404" in r.err

    board.override("GET", "/api/control", 422, {"detail": [{"loc": ["query", "stage"], "msg": "bad stage"}]})
    r = wf("--url", board.url, "status")
    assert r.code == 1
    assert "query.stage: bad stage" in r.err


def test_usage_errors_exit_2_without_calling_the_api(board: FakeBoard) -> None:
    assert run_wf("--url", board.url, "show", "not-a-key").code == 2
    assert run_wf("--url", board.url, "reject", "T-001").code == 2  # --reason is required
    r = run_wf("--url", board.url, "edit", "T-001")
    assert r.code == 2
    assert "nothing to change" in r.err
    assert run_wf("--url", board.url, "idea", "x", "--priority", "11").code == 2
    assert run_wf("--url", board.url, "frobnicate").code == 2
    assert board.requests == []


def test_version_flag() -> None:
    r = run_wf("--version")
    assert r.code == 0
    assert r.out.startswith("wf ")


# ---------------------------------------------------------------------------------- task key → project


def test_approve_finds_the_project_from_the_key_and_sends_the_actor(board: FakeBoard, wf: Wf) -> None:
    board.add_task("listsnap", "T-001", stage="pm", state="awaiting_approval")
    r = wf("--url", board.url, "approve", "t-001", "--note", "looks right")
    assert r.code == 0, r.err
    assert board.paths() == ["GET /api/tasks", "POST /api/projects/listsnap/tasks/T-001/approve"]
    assert board.requests[0].query == {"key": "T-001"}
    post = board.last("POST")
    assert post.body == {"note": "looks right"}
    assert post.headers["x-wf-actor"] == f"human:{getpass.getuser()}"
    assert "approved T-001 (listsnap) — now dev (queued)" in r.out


def test_a_key_in_two_projects_needs_project(board: FakeBoard, wf: Wf) -> None:
    board.add_task("alpha", "T-001", state="awaiting_approval")
    board.add_task("beta", "T-001", state="awaiting_approval")
    r = wf("--url", board.url, "approve", "T-001")
    assert r.code == 2
    assert "alpha, beta" in r.err
    assert "--project" in r.err
    r = wf("--url", board.url, "approve", "T-001", "--project", "beta")
    assert r.code == 0, r.err
    assert board.last("POST").path == "/api/projects/beta/tasks/T-001/approve"


def test_an_unknown_key_fails(board: FakeBoard, wf: Wf) -> None:
    r = wf("--url", board.url, "show", "T-999")
    assert r.code == 1
    assert "no task T-999" in r.err


def test_an_unknown_project_given_with_a_key_shows_the_api_404(board: FakeBoard, wf: Wf) -> None:
    r = wf("--url", board.url, "retry", "T-001", "--project", "nope")
    assert r.code == 1
    assert "no task T-001 in project nope" in r.err


# ---------------------------------------------------------------------------------- the other commands


def test_project_create_sends_an_absolute_workspace(
    board: FakeBoard, tmp_path: Path, wf: Wf, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ws").mkdir()
    monkeypatch.chdir(tmp_path)
    r = wf("--url", board.url, "project", "create", "listsnap", "--workspace", "ws")
    assert r.code == 0, r.err
    assert board.last("POST").body == {"slug": "listsnap", "workspace": str(tmp_path / "ws")}
    r = wf(
        "--url",
        board.url,
        "project",
        "create",
        "two",
        "--workspace",
        "/w",
        "--name",
        "Two",
        "--test-command",
        "make test",
    )
    assert board.last("POST").body == {
        "slug": "two",
        "workspace": "/w",
        "name": "Two",
        "test_command": "make test",
    }
    r = wf("--url", board.url, "project", "list")
    assert r.code == 0
    assert r.out.splitlines()[0].split() == ["SLUG", "NAME", "WORKSPACE", "TEST", "COMMAND"]
    assert "two" in r.out
    assert "make test" in r.out
    assert wf("--url", board.url, "project", "create", "Bad Slug", "--workspace", "/w").code == 2


def test_idea_uses_the_only_project_or_asks_which(board: FakeBoard, wf: Wf) -> None:
    board.add_project("listsnap")
    r = wf("--url", board.url, "idea", "An app that lists things", "--priority", "8")
    assert r.code == 0, r.err
    assert board.last("POST").path == "/api/projects/listsnap/ideas"
    assert board.last("POST").body == {"text": "An app that lists things", "priority": 8}
    assert "T-001" in r.out

    board.add_project("other")
    r = wf("--url", board.url, "idea", "Another one")
    assert r.code == 2
    assert "--project" in r.err
    r = wf("--url", board.url, "idea", "Another one", "--project", "nope")
    assert r.code == 1
    assert "no project 'nope'" in r.err


def test_edit_sends_only_the_given_fields(board: FakeBoard, wf: Wf) -> None:
    board.add_task("listsnap", "T-005")
    r = wf(
        "--url",
        board.url,
        "edit",
        "T-005",
        "--title",
        "New title",
        "--criteria",
        "a works",
        "--criteria",
        "b works",
        "--priority",
        "2",
        "--blocked-by",
        "t-001",
        "T-002",
    )
    assert r.code == 0, r.err
    assert board.last("PATCH").body == {
        "title": "New title",
        "acceptance_criteria": ["a works", "b works"],
        "priority": 2,
        "blocked_by": ["T-001", "T-002"],
    }
    r = wf("--url", board.url, "edit", "T-005", "--blocked-by", "--project", "listsnap")
    assert r.code == 0, r.err
    assert board.last("PATCH").body == {"blocked_by": []}


def test_reject_feedback_retry(board: FakeBoard, wf: Wf) -> None:
    board.add_task("listsnap", "T-001", stage="pm", state="awaiting_approval")
    assert wf("--url", board.url, "reject", "T-001", "--reason", "too big").code == 0
    assert board.last("POST").body == {"reason": "too big"}
    assert wf("--url", board.url, "feedback", "T-001", "use sqlite", "-p", "listsnap").code == 0
    assert board.last("POST").path.endswith("/T-001/feedback")
    assert board.last("POST").body == {"text": "use sqlite"}
    assert wf("--url", board.url, "retry", "T-001").code == 0
    assert board.last("POST").path == "/api/projects/listsnap/tasks/T-001/retry"


def test_pause_and_resume(board: FakeBoard, wf: Wf) -> None:
    r = wf("--url", board.url, "pause")
    assert r.code == 0
    assert "paused" in r.out
    assert board.paused is True
    r = wf("--url", board.url, "resume")
    assert r.code == 0
    assert board.paused is False
    assert board.paths() == ["POST /api/control/pause", "POST /api/control/resume"]


def test_bugs_and_bug_kill(board: FakeBoard, wf: Wf) -> None:
    board.add_project("listsnap")
    board.bugs += [
        {
            "project": "listsnap",
            "key": "B-001",
            "task_key": "T-002",
            "title": "crash on empty list",
            "status": "open",
            "source_stage": "qa",
            "reproduction": {},
        },
        {
            "project": "listsnap",
            "key": "B-002",
            "task_key": "T-002",
            "title": "old one",
            "status": "killed",
            "source_stage": "sec",
            "reproduction": {},
        },
    ]
    r = wf("--url", board.url, "bugs", "--project", "listsnap")
    assert r.code == 0, r.err
    assert "B-001" in r.out
    assert "crash on empty list" in r.out
    assert "B-002" not in r.out
    r = wf("--url", board.url, "bugs", "--all")
    assert "B-002" in r.out
    assert board.last("GET").query == {"include_killed": "true"}

    r = wf("--url", board.url, "bug", "kill", "b-001", "--project", "listsnap", "--reason", "wontfix")
    assert r.code == 0, r.err
    assert board.last("POST").path == "/api/projects/listsnap/bugs/B-001/kill"
    assert board.last("POST").body == {"reason": "wontfix"}
    r = wf("--url", board.url, "bug", "kill", "B-404", "--project", "listsnap")
    assert r.code == 1
    assert "no bug B-404" in r.err


def test_show_renders_the_history(board: FakeBoard, wf: Wf) -> None:
    t = board.add_task(
        "listsnap",
        "T-002",
        stage="qa",
        state="running",
        title="Upload photos",
        description="Let users upload.\nTwo lines.",
        acceptance_criteria=["jpg works", "png works"],
    )
    board.details[("listsnap", "T-002")] = {
        **t,  # the board API's TaskDetail: the task's fields and its history side by side
        "handoffs": [
            {
                "from_stage": "pm",
                "to_stage": "dev",
                "payload": {},
                "notes": "go",
                "actor": "human:ann",
                "created_at": "2026-01-02T03:04:05+00:00",
                "requires_approval": True,
                "approved_at": "2026-01-02T03:05:00+00:00",
                "approved_by": "human:ann",
            },
            {
                "from_stage": "docs",
                "to_stage": "deploy",
                "payload": {},
                "notes": None,
                "actor": "agent:docs",
                "created_at": "2026-01-02T04:00:00+00:00",
                "requires_approval": True,
                "approved_at": None,
                "approved_by": None,
                "rejected_at": "2026-01-02T04:10:00+00:00",
                "rejected_by": "human:bob",
                "decision_note": "changelog missing",
            },
        ],
        "executions": [
            {
                "id": 7,
                "stage": "dev",
                "attempt": 1,
                "status": "completed",
                "result_status": "pass",
                "result_summary": "implemented upload",
                "usage": {
                    "prompt_tokens": 1200,
                    "completion_tokens": 300,
                    "llm_calls": 4,
                    "duration_ms": 12500,
                },
            },
        ],
        "bugs": [
            {"key": "B-001", "title": "png fails", "status": "open", "source_stage": "qa", "reproduction": {}}
        ],
        "feedback": [
            {"text": "mind the size limit", "actor": "human:ann", "created_at": "2026-01-02T03:06:00Z"}
        ],
        "attachments": [
            {"id": 1, "filename": "shot.png", "content_type": "image/png", "size": 2048, "bug_key": "B-001",
             "created_by": "agent:qa", "created_at": "2026-01-02T03:06:00Z", "url": "/api/attachments/1"},
        ],
        "children": ["T-003", "T-004"],
        "cost": {"executions": 1, "llm_calls": 4, "prompt_tokens": 1200, "completion_tokens": 300,
                 "total_tokens": 1500, "duration_ms": 12500, "models": ["qwen2.5-coder:7b"]},
    }  # fmt: skip
    r = wf("--url", board.url, "show", "T-002")
    assert r.code == 0, r.err
    out = r.out
    assert out.splitlines()[0].split() == ["T-002", "Upload", "photos", "[listsnap]"]
    assert "  Let users upload.\n  Two lines." in out
    assert "  1. jpg works" in out
    assert "  2. png works" in out
    assert "pm → dev" in out
    assert "approved by human:ann" in out
    assert "#7" in out
    assert "1500 tokens (1200 in, 300 out), 4 calls, 12.5s" in out
    assert "B-001" in out
    assert "png fails" in out
    assert "mind the size limit" in out
    assert "rejected by human:bob" in out
    assert "changelog missing" in out
    assert "shot.png" in out
    assert "/api/attachments/1" in out
    assert "Tasks made from it: T-003, T-004" in out
    assert "Cost: 1 execution, 1500 tokens (1200 in, 300 out), 4 calls, 12.5s, qwen2.5-coder:7b" in out

    r = wf("--url", board.url, "show", "T-002", "--json")
    assert json.loads(r.out)["executions"][0]["id"] == 7


# ---------------------------------------------------------------------------------- untrusted text


HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[31mRed\x1b[0m title\r\x08\x00\x9b31m\u202eevil"


def test_model_written_text_reaches_the_terminal_without_control_characters(board: FakeBoard) -> None:
    t = board.add_task("listsnap", "T-001", title=HOSTILE, description=f"line one\n{HOSTILE}\n")
    board.details[("listsnap", "T-001")] = {
        **t,
        "executions": [
            {"id": 1, "stage": "dev", "attempt": 1, "status": "failed", "result_summary": HOSTILE}
        ],
    }
    outputs = [
        run_wf("--url", board.url, "status").out,
        run_wf("--url", board.url, "show", "T-001").out,
    ]
    board.override("POST", "/api/control/pause", 409, error("conflict", HOSTILE))
    outputs.append(run_wf("--url", board.url, "pause").err)
    for out in outputs:
        assert "Red title" in out
        for bad in ("\x1b", "\x07", "\r", "\x08", "\x00", "\x9b", "\u202e"):
            assert bad not in out, (bad, out)
    # --json stays exact (escaped by JSON itself)
    r = run_wf("--url", board.url, "status", "--json")
    assert "\x1b" not in r.out
    assert json.loads(r.out)["tasks"][0]["title"] == HOSTILE
