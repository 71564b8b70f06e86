"""The board's pages and the endpoints behind them: the pages render escaped with a strict CSP, the
diff comes from git (branch or trailer commits) with line numbers, older output is paged from the
event stream, moves and line comments become commands."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common import bus
from wf_common.commands import AddFeedback, MoveTask
from wf_common.events import AgentOutput
from wf_orchestrator.app import Orchestrator

from tests.board import rows
from tests.board.conftest import CommandTap, new_project

XSS = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def make_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "t")
    (path / "a.py").write_text("one\ntwo\nthree\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "init")
    return path


async def test_root_redirects_to_the_board_and_pages_carry_a_strict_csp(
    client: httpx.AsyncClient, db: AsyncConnection
) -> None:
    root = await client.get("/")
    assert root.status_code == 303
    assert root.headers["location"] == "/ui/"
    pid = await rows.project(db, "calc", name=XSS)
    await rows.task(db, pid, "T-001", title=f"Title {XSS}")
    for path in ("/ui/", "/ui/projects/calc", "/ui/projects/calc/tasks/T-001", "/ui/dashboard"):
        page = await client.get(path)
        assert page.status_code == 200, path
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "<script>alert" not in page.text, path
        assert "style=" not in page.text, path
    board = await client.get("/ui/projects/calc")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in board.text
    missing = await client.get("/ui/projects/nope")
    assert missing.status_code == 404
    assert "project &#39;nope&#39; not found" in missing.text
    static = await client.get("/ui/static/vendor/htmx.min.js")
    assert static.status_code == 200


async def test_diff_of_the_task_branch_against_main_with_line_numbers(
    client: httpx.AsyncClient, db: AsyncConnection, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc")
    git(repo, "checkout", "-q", "-b", "wf/T-001")
    (repo / "a.py").write_text(f"one\n2 {XSS}\nthree\n")
    (repo / "new.py").write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "T-001: change")
    git(repo, "checkout", "-q", "main")
    pid = await rows.project(db, "calc", workspace=str(repo))
    await rows.task(db, pid, "T-001")

    diff = (await client.get("/api/projects/calc/tasks/T-001/diff")).json()
    assert (diff["source"], diff["base"], diff["branch"]) == ("branch", "main", "wf/T-001")
    files = {f["path"]: f for f in diff["files"]}
    assert set(files) == {"a.py", "new.py"}
    assert files["new.py"]["status"] == "added"
    lines = files["a.py"]["hunks"][0]["lines"]
    assert {"kind": "del", "old": 2, "new": None, "text": "two"} in lines
    assert {"kind": "add", "old": None, "new": 2, "text": f"2 {XSS}"} in lines
    assert {"kind": "context", "old": 3, "new": 3, "text": "three"} in lines

    fragment = await client.get("/ui/projects/calc/tasks/T-001/diff")
    assert 'aria-label="Comment on a.py line 2"' in fragment.text
    assert "&lt;img src=x onerror=" in fragment.text
    assert "<img" not in fragment.text


async def test_without_a_branch_the_diff_is_the_tasks_commits_by_trailer(
    client: httpx.AsyncClient, db: AsyncConnection, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc")
    (repo / "b.py").write_text("b\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "T-002: add b\n\nWorkflow-Job: calc/T-002/dev/1")
    (repo / "c.py").write_text("c\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "T-003: other task\n\nWorkflow-Job: calc/T-003/dev/1")
    pid = await rows.project(db, "calc", workspace=str(repo))
    await rows.task(db, pid, "T-002")
    await rows.task(db, pid, "T-004")

    diff = (await client.get("/api/projects/calc/tasks/T-002/diff")).json()
    assert diff["source"] == "commits"
    assert len(diff["commits"]) == 1
    assert [f["path"] for f in diff["files"]] == ["b.py"]
    none = (await client.get("/api/projects/calc/tasks/T-004/diff")).json()
    assert none["source"] == "none"
    assert "no branch wf/T-004 and no commits of T-004 yet" in none["message"]


async def test_older_output_is_paged_by_event_id(
    client: httpx.AsyncClient, db: AsyncConnection, js: JetStreamContext
) -> None:
    pid = await rows.project(db, "calc")
    await rows.task(db, pid, "T-001")
    ids = []
    for i in range(5):
        event = AgentOutput(
            project="calc", task_key="T-001", execution_id=1, stage="dev", kind="log", text=f"line {i}"
        )
        ids.append(await bus.publish(js, event.subject(), event))
    other = AgentOutput(project="calc", task_key="T-009", execution_id=2, stage="dev", kind="log", text="x")
    await bus.publish(js, other.subject(), other)

    tail = (await client.get("/api/projects/calc/tasks/T-001/output", params={"limit": 2})).json()
    assert [line["text"] for line in tail["lines"]] == ["line 3", "line 4"]
    assert tail["more"] is True
    older = (
        await client.get("/api/projects/calc/tasks/T-001/output", params={"limit": 10, "before": ids[3]})
    ).json()
    assert [line["text"] for line in older["lines"]] == ["line 0", "line 1", "line 2"]
    assert [line["id"] for line in older["lines"]] == ids[:3]
    assert older["more"] is False


async def test_move_and_line_comments_become_commands(
    client: httpx.AsyncClient, orchestrator: Orchestrator, commands: CommandTap, tmp_path: Path
) -> None:
    await new_project(client, tmp_path / "calc", slug="calc")
    await client.post("/api/projects/calc/ideas", json={"text": "Add a square root key"})
    # The orchestrator decides: an idea is not dragged, its breakdown is approved or rejected.
    moved = await client.post("/api/projects/calc/tasks/t-001/move", json={"to_stage": "dev"})
    assert moved.status_code == 409, moved.text
    assert moved.json()["message"] == "T-001 is an idea: approve or reject its breakdown instead"
    move = commands.last()
    assert isinstance(move, MoveTask)
    assert (move.task_key, move.to_stage) == ("T-001", "dev")

    note = {"text": "check this", "file": "calc/add.py", "line": 2}
    noted = await client.post("/api/projects/calc/tasks/T-001/feedback", json=note)
    assert noted.status_code == 201, noted.text
    feedback = commands.last()
    assert isinstance(feedback, AddFeedback)
    assert (feedback.file, feedback.line) == ("calc/add.py", 2)
    [shown] = (await client.get("/api/projects/calc/tasks/T-001")).json()["feedback"]
    assert (shown["text"], shown["file"], shown["line"]) == ("check this", "calc/add.py", 2)

    sent = len(commands.sent())
    bad = await client.post("/api/projects/calc/tasks/T-001/feedback", json={"text": "x", "line": 0})
    assert bad.status_code == 422
    assert len(commands.sent()) == sent  # refused by the board, never sent


async def test_card_page_shows_the_whole_task(client: httpx.AsyncClient, db: AsyncConnection) -> None:
    """Description, criteria, blocked_by, handoffs, executions with tokens and time, bugs with their
    reproduction, feedback and attachments: all on the card's deep link, escaped."""
    pid = await rows.project(db, "calc")
    blocker = await rows.task(db, pid, "T-001", title="Set up the package")
    tid = await rows.task(
        db,
        pid,
        "T-002",
        title="Add function add",
        description=f"Sum two numbers {XSS}",
        acceptance_criteria=["add(2, 3) == 5", "add(-1, 1) == 0"],
        blocked_by=[blocker],
        current_stage="qa",
    )
    dev = await rows.agent(db, "dev")
    usage = {"prompt_tokens": 1200, "completion_tokens": 300, "duration_ms": 4500, "llm_calls": 2}
    eid = await rows.execution(
        db, tid, dev, "dev", 1, status="completed", result_status="pass", result_summary="Implemented add",
        usage=usage,
    )  # fmt: skip
    await rows.handoff(db, tid, "dev", "qa", actor="agent:dev", notes="ready for tests")
    bug = await rows.bug(
        db, pid, tid, "BUG-001", title="add(-1, 1) is wrong", execution_id=eid,
        reproduction={"command": "pytest tests/test_add.py", "expected": "0", "actual": "2"},
    )  # fmt: skip
    await rows.note(db, tid, "Mind negative numbers")
    png = b"\x89PNG..."
    await rows.attachment(db, pid, png, task_id=tid, filename="screen.png", content_type="image/png")
    await rows.attachment(db, pid, b"FAILED", task_id=tid, bug_id=bug, filename="e2e-output.txt")

    page = await client.get("/ui/projects/calc/tasks/T-002")
    assert page.status_code == 200
    text = page.text
    assert "Sum two numbers &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<li>add(2, 3) == 5</li>" in text
    assert "<li>add(-1, 1) == 0</li>" in text
    assert '<a href="/ui/projects/calc/tasks/T-001">T-001</a>' in text  # blocked by, as a link
    assert "dev → qa by agent:dev" in text
    assert "ready for tests" in text
    assert "Implemented add" in text
    assert "Tokens: 1500 (1200 prompt, 300 completion) in 2 model calls, 4.5 s." in text
    assert "BUG-001" in text
    assert "add(-1, 1) is wrong" in text
    assert "pytest tests/test_add.py" in text  # the bug's reproduction
    assert "Mind negative numbers" in text
    assert "screen.png" in text
    assert "image/png" in text
    assert "e2e-output.txt</a> (application/octet-stream, 6 bytes), from bug BUG-001</li>" in text
    assert "<script>alert" not in text

    # The board's card carries the badges: open bugs, failed checks, tokens spent.
    qa = await rows.agent(db, "qa")
    await rows.execution(db, tid, qa, "qa", 1, status="completed", result_status="fail")
    board = (await client.get("/ui/projects/calc")).text
    card = board[board.index('id="card-T-002"') :].split("</article>")[0]
    assert "1 open bug<" in card
    assert "1 failed check<" in card
    assert "1500 tokens" in card
