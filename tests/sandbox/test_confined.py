"""Escapes through the workspace's file system (issue 5 §2): every file the runner writes on an agent's
behalf or for itself goes through the confined opener, so symlinks, hard links, races and nested
.git directories cannot take a write (or read) outside the workspace; and the test command runs with
a fresh HOME, a minimal environment and its own process group even with backend `none`."""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

import pytest
from wf_agent_runner.execution import JobExecutor
from wf_agent_runner.sandbox.process import HostSandbox
from wf_agent_runner.testrun import run_tests
from wf_agent_runner.tools import FILE_TOOLS, ToolBox
from wf_agent_runner.workspace import Workspace
from wf_common.config import SandboxConfig, parse_config
from wf_common.jobs import Job, ProjectRef, TaskRef, idempotency_key
from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.helpers import MODEL, make_repo
from tests.runner.test_pm import BREAKDOWN
from tests.sandbox.test_backends import _process_with

AT_FDCWD = -100
RENAME_EXCHANGE = 2


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "ws", {"app/__init__.py": "", "app/prices.py": "X = 1\n"})


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text("top secret\n", encoding="utf-8")
    return d


@pytest.fixture
def box(ws: Path) -> ToolBox:
    return ToolBox(Workspace(ws), FILE_TOOLS)


def test_a_symlink_to_a_file_outside_is_not_written_through(box: ToolBox, ws: Path, outside: Path) -> None:
    (ws / "notes.txt").symlink_to(outside / "secret.txt")
    for tool, args in [
        ("write_file", {"path": "notes.txt", "content": "pwned"}),
        ("edit_file", {"path": "notes.txt", "old": "top", "new": "pwned"}),
        ("read_file", {"path": "notes.txt"}),
    ]:
        out = box.call(tool, args)
        assert not out.ok, tool
        assert "symbolic link" in out.text
    assert (outside / "secret.txt").read_text() == "top secret\n"


def test_a_symlinked_parent_directory_is_not_followed(box: ToolBox, ws: Path, outside: Path) -> None:
    (ws / "app" / "vendor").symlink_to(outside, target_is_directory=True)
    out = box.call("write_file", {"path": "app/vendor/new.py", "content": "X = 2\n"})
    assert not out.ok
    assert "symbolic link" in out.text
    assert not (outside / "new.py").exists()
    assert not box.call("list_files", {"path": "app/vendor"}).ok
    assert "secret.txt" not in box.call("list_files", {"path": "."}).text


def test_a_hard_link_to_a_file_outside_is_not_written(box: ToolBox, ws: Path, outside: Path) -> None:
    os.link(outside / "secret.txt", ws / "linked.txt")
    for tool, args in [
        ("write_file", {"path": "linked.txt", "content": "pwned"}),
        ("edit_file", {"path": "linked.txt", "old": "top", "new": "pwned"}),
    ]:
        out = box.call(tool, args)
        assert not out.ok, tool
        assert "hard link" in out.text
    assert (outside / "secret.txt").read_text() == "top secret\n"  # not even truncated


def _exchange(a: Path, b: Path) -> None:
    """Atomically swap two names (renameat2 RENAME_EXCHANGE): the classic check-then-use attack."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), f"renameat2 {a} {b}")


def test_swapping_a_directory_for_a_symlink_during_writes_never_escapes(
    box: ToolBox, ws: Path, outside: Path
) -> None:
    """While the agent writes app/data/x.txt, app/data is swapped with a symlink to outside as fast as
    possible. The old check (realpath) then open escaped within a few hundred writes."""
    (ws / "app" / "data").mkdir()
    link = ws / "app" / "swap"
    link.symlink_to(outside, target_is_directory=True)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            _exchange(ws / "app" / "data", link)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        for i in range(1500):
            box.call("write_file", {"path": "app/data/x.txt", "content": f"write {i}\n"})
    finally:
        stop.set()
        swapper.join(10)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


@pytest.mark.parametrize("path", ["sub/.git/hooks/pre-commit", "vendor/lib/.GIT/config", ".git/HEAD"])
def test_git_directories_at_any_depth_are_off_limits(box: ToolBox, ws: Path, path: str) -> None:
    (ws / path).parent.mkdir(parents=True, exist_ok=True)
    out = box.call("write_file", {"path": path, "content": "#!/bin/sh\necho hooked\n"})
    assert not out.ok
    assert "inside .git/" in out.text
    assert not box.call("read_file", {"path": path}).ok
    if path != ".git/HEAD":
        assert not (ws / path).exists()


def test_lint_on_edit_rejects_a_python_file_left_unparsable(box: ToolBox, ws: Path) -> None:
    out = box.call("write_file", {"path": "app/broken.py", "content": "def f(:\n    pass\n"})
    assert not out.ok
    assert "line 1" in out.text
    assert "not be valid Python" in out.text
    assert not (ws / "app" / "broken.py").exists()
    edit = box.call("edit_file", {"path": "app/prices.py", "old": "X = 1", "new": "X = (1"})
    assert not edit.ok
    assert "not be valid Python" in edit.text
    assert (ws / "app" / "prices.py").read_text() == "X = 1\n"
    assert box.call("write_file", {"path": "notes.md", "content": "def f(:"}).ok  # only Python is parsed


def test_read_file_line_ranges_and_search(box: ToolBox, ws: Path) -> None:
    (ws / "app" / "many.py").write_text("".join(f"V{i} = {i}\n" for i in range(1, 51)))
    part = box.call("read_file", {"path": "app/many.py", "start_line": 10, "end_line": 12})
    assert part.ok
    assert part.text.splitlines()[:3] == ["10: V10 = 10", "11: V11 = 11", "12: V12 = 12"]
    assert "lines 10-12 of 50" in part.text
    found = box.call("search", {"pattern": r"V4\d = ", "path": "app"})
    assert found.ok
    assert found.text.splitlines()[0] == "app/many.py:40:V40 = 40"
    assert len(found.text.splitlines()) == 10
    assert "no match" in box.call("search", {"pattern": "nothing-like-this"}).text
    assert "invalid search pattern" in box.call("search", {"pattern": "(unclosed"}).text


async def test_the_test_command_gets_a_fresh_home_a_minimal_env_and_its_own_group(ws: Path) -> None:
    os.environ["WF_NATS_URL"] = "nats://user:hunter2@127.0.0.1:4222"
    sandbox = HostSandbox(SandboxConfig(backend="none"), ws)
    try:
        report = await run_tests(
            sandbox,
            "sh -c 'echo \"home=$HOME\"; env; (sleep 8311 &); sleep 8312 & echo bg'",
            limit_seconds=30,
        )
    finally:
        del os.environ["WF_NATS_URL"]
        await sandbox.close()
    tail = report.run.output_tail
    assert "bg" in tail
    assert f"home={Path.home()}" not in tail
    assert "hunter2" not in tail
    assert "WF_NATS_URL" not in tail
    assert not await _process_with("sleep 8312")  # its process group was killed when it ended


def _pm_job(ws: Path) -> Job:
    project = ProjectRef(slug="listsnap", name="L", workspace=str(ws), test_command="true")
    task = TaskRef(key="T-001", title="ListSnap", description="an idea")
    return Job(
        job_id=5,
        idempotency_key=idempotency_key("listsnap", "T-001", "pm", 1),
        stage="pm",
        role="pm",
        attempt=1,
        project=project,
        task=task,
        idea="an idea",
    )


def _executor(url: str) -> JobExecutor:
    config = parse_config(
        {"llm_backend": {"host": url, "model": MODEL, "timeout_seconds": 20}, "sandbox": {"backend": "none"}}
    )
    return JobExecutor(config, None, runner_id="confined-test")


async def test_the_pms_tasks_json_is_not_written_through_a_planted_symlink(ws: Path, outside: Path) -> None:
    (ws / ".workflow").mkdir()
    (ws / ".workflow" / "tasks.json").symlink_to(outside / "secret.txt")
    with ScriptedOllama(models=(MODEL,)) as fake:
        fake.queue(Reply.json(BREAKDOWN))
        outcome = await _executor(fake.url).execute(_pm_job(ws), 1)
    assert outcome.result is not None
    assert outcome.result.status is Verdict.ERROR
    assert "symbolic link" in outcome.result.summary
    assert (outside / "secret.txt").read_text() == "top secret\n"


async def test_the_transcript_is_not_written_through_a_symlinked_log_directory(
    ws: Path, outside: Path
) -> None:
    (ws / ".workflow").mkdir()
    (ws / ".workflow" / "agent_logs").symlink_to(outside, target_is_directory=True)
    with ScriptedOllama(models=(MODEL,)) as fake:
        outcome = await _executor(fake.url).execute(_pm_job(ws), 1)
    assert outcome.result is not None
    assert outcome.result.status is Verdict.ERROR
    assert outcome.result.error is not None
    assert outcome.result.error.kind == "workspace"
    assert sorted(os.listdir(outside)) == ["secret.txt"]
