"""File tools: confinement to the workspace, edit_file semantics, limits, and errors for the model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from wf_agent_runner.agents.qa import only_test_files
from wf_agent_runner.tools import FILE_TOOLS, READ_ONLY_TOOLS, SCHEMAS, ToolBox
from wf_agent_runner.workspace import MAX_READ_BYTES, MAX_WRITE_BYTES, Workspace, WorkspaceError


@pytest.fixture
def box(workspace: Path) -> ToolBox:
    return ToolBox(Workspace(workspace), FILE_TOOLS)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("top secret", encoding="utf-8")
    return secret


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("read_file", {"path": "../outside/secret.txt"}),
        ("read_file", {"path": "app/../../outside/secret.txt"}),
        ("list_files", {"path": ".."}),
        ("write_file", {"path": "../outside/new.txt", "content": "x"}),
        ("edit_file", {"path": "../outside/secret.txt", "old": "top", "new": "no"}),
    ],
)
def test_dotdot_paths_are_refused_with_a_clear_error(
    box: ToolBox, outside: Path, tool: str, args: dict[str, str]
) -> None:
    out = box.call(tool, args)
    assert not out.ok
    assert "resolves outside the workspace" in out.text
    assert outside.read_text() == "top secret"
    assert not (outside.parent / "new.txt").exists()


def test_dotdot_that_stays_inside_is_fine(box: ToolBox) -> None:
    out = box.call("read_file", {"path": "tests/../app/prices.py"})
    assert out.ok
    assert "def parse_price" in out.text


@pytest.mark.parametrize("path", ["/etc/passwd", "~/.ssh/id_rsa"])
def test_absolute_paths_are_refused(box: ToolBox, path: str) -> None:
    out = box.call("read_file", {"path": path})
    assert not out.ok
    assert "absolute path" in out.text
    assert "relative to the workspace" in out.text


def test_symlinks_pointing_outside_are_refused(box: ToolBox, workspace: Path, outside: Path) -> None:
    (workspace / "link.txt").symlink_to(outside)
    (workspace / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    for tool, args in [
        ("read_file", {"path": "link.txt"}),
        ("write_file", {"path": "link.txt", "content": "pwned"}),
        ("write_file", {"path": "linkdir/new.txt", "content": "pwned"}),
        ("list_files", {"path": "linkdir"}),
    ]:
        out = box.call(tool, args)
        assert not out.ok, (tool, out.text)
        assert "symbolic link" in out.text, (tool, out.text)
    assert outside.read_text() == "top secret"
    assert not (outside.parent / "new.txt").exists()


def test_symlinks_are_not_followed_even_inside_the_workspace(box: ToolBox, workspace: Path) -> None:
    # A link that points inside now may point outside a moment later: none is followed.
    (workspace / "alias.py").symlink_to(workspace / "app" / "prices.py")
    out = box.call("read_file", {"path": "alias.py"})
    assert not out.ok
    assert "symbolic link" in out.text
    assert "def parse_price" in box.call("read_file", {"path": "app/prices.py"}).text


@pytest.mark.parametrize("path", [".git/config", ".git/hooks/pre-commit", "app/../.git/HEAD"])
def test_git_internals_are_off_limits(box: ToolBox, workspace: Path, path: str) -> None:
    before = (workspace / ".git" / "config").read_text()
    out = box.call("write_file", {"path": path, "content": "evil"})
    assert not out.ok
    assert "inside .git/" in out.text
    assert (workspace / ".git" / "config").read_text() == before
    assert not (workspace / ".git" / "hooks" / "pre-commit").exists()
    assert "inside .git/" in box.call("read_file", {"path": path}).text
    assert "inside .git/" in box.call("list_files", {"path": ".git"}).text


def test_the_workspace_root_cannot_be_written(box: ToolBox) -> None:
    assert "root itself cannot be written" in box.call("write_file", {"path": ".", "content": "x"}).text


def test_edit_file_replaces_exactly_one_occurrence(box: ToolBox, workspace: Path) -> None:
    target = workspace / "app" / "prices.py"
    out = box.call(
        "edit_file", {"path": "app/prices.py", "old": 'replace("$", "")', "new": 'replace("€", "")'}
    )
    assert out.ok, out.text
    assert 'replace("€", "")' in target.read_text()
    assert box.workspace.changed == ["app/prices.py"]


@pytest.mark.parametrize(("old", "count"), [("not in the file", 0), ("replace(", 2)])
def test_edit_file_says_how_often_old_occurs(box: ToolBox, workspace: Path, old: str, count: int) -> None:
    before = (workspace / "app" / "prices.py").read_text()
    out = box.call("edit_file", {"path": "app/prices.py", "old": old, "new": "x"})
    assert not out.ok
    assert f"occurs {count} times" in out.text
    assert "exactly once" in out.text
    assert (workspace / "app" / "prices.py").read_text() == before


def test_edit_file_keeps_crlf_line_endings(box: ToolBox, workspace: Path) -> None:
    (workspace / "win.txt").write_bytes(b"one\r\ntwo\r\n")
    assert box.call("edit_file", {"path": "win.txt", "old": "two", "new": "2"}).ok
    assert (workspace / "win.txt").read_bytes() == b"one\r\n2\r\n"


def test_edit_file_needs_an_existing_file_and_non_empty_old(box: ToolBox, workspace: Path) -> None:
    assert "does not exist" in box.call("edit_file", {"path": "nope.py", "old": "a", "new": "b"}).text
    before = (workspace / "app" / "prices.py").read_text()
    refused = box.call("edit_file", {"path": "app/prices.py", "old": "", "new": "b"})
    assert "must not be empty; to create or replace a whole file use write_file" in refused.text
    assert (workspace / "app" / "prices.py").read_text() == before


def test_an_edit_of_nothing_in_a_new_file_creates_it(box: ToolBox, workspace: Path) -> None:
    # What Qwen2.5-Coder 0.5B sends to make a file: edit_file with an empty `old`.
    out = box.call(
        "edit_file", {"path": "palindrome.py", "old": "", "new": "def f() -> int:\n    return 1\n"}
    )
    assert out.ok, out.text
    assert "created palindrome.py" in out.text
    assert (workspace / "palindrome.py").read_text() == "def f() -> int:\n    return 1\n"
    assert box.workspace.changed == ["palindrome.py"]
    # The same checks as write_file: no Python that does not parse, nothing outside the workspace.
    assert not box.call("edit_file", {"path": "broken.py", "old": "", "new": "def f(:\n"}).ok
    assert not box.call("edit_file", {"path": "../out.py", "old": "", "new": "x = 1\n"}).ok
    assert not (workspace / "broken.py").exists()


def test_write_creates_parents_and_tracks_changes(box: ToolBox, workspace: Path) -> None:
    out = box.call("write_file", {"path": "app/new/mod.py", "content": "X = 1\n"})
    assert out.ok
    assert "created app/new/mod.py" in out.text
    assert (workspace / "app" / "new" / "mod.py").read_text() == "X = 1\n"
    assert box.workspace.changed == ["app/new/mod.py"]


def test_size_limits(box: ToolBox, workspace: Path) -> None:
    out = box.call("write_file", {"path": "big.txt", "content": "x" * (MAX_WRITE_BYTES + 1)})
    assert not out.ok
    assert "limit" in out.text
    assert not (workspace / "big.txt").exists()
    (workspace / "huge.txt").write_text("y" * (MAX_READ_BYTES + 10))
    read = box.call("read_file", {"path": "huge.txt"})
    assert read.ok
    assert "truncated" in read.text
    assert len(read.text) < MAX_READ_BYTES + 200


def test_list_files_skips_git_and_agent_logs(box: ToolBox, workspace: Path) -> None:
    (workspace / ".workflow" / "agent_logs").mkdir(parents=True)
    (workspace / ".workflow" / "agent_logs" / "x.jsonl").write_text("{}")
    listing = box.call("list_files", {"path": "."}).text.splitlines()
    assert "app/prices.py" in listing
    assert "tests/test_prices.py" in listing
    assert not any(p.startswith(".git/") or "agent_logs" in p for p in listing)


def test_bad_calls_come_back_as_errors(box: ToolBox) -> None:
    assert "no tool 'rm'" in box.call("rm", {"path": "."}).text
    assert "missing argument 'path'" in box.call("read_file", {}).text
    assert "must be a string" in box.call("read_file", {"path": 3}).text
    assert "status must be 'pass' or 'fail'" in box.call("finish", {"status": "done", "summary": "x"}).text
    finished = box.call("finish", {"status": "PASS", "summary": "Add parser"})
    assert finished.finish is not None
    assert finished.finish.status == "pass"


def test_read_only_toolbox_has_no_write_tools(workspace: Path) -> None:
    box = ToolBox(Workspace(workspace), READ_ONLY_TOOLS)
    assert [s["function"]["name"] for s in box.schemas] == ["list_files", "read_file", "search", "finish"]
    assert "no tool 'write_file'" in box.call("write_file", {"path": "a", "content": "b"}).text
    assert SCHEMAS["finish"]["function"]["parameters"]["properties"]["status"]["enum"] == ["pass", "fail"]


def test_qa_may_only_write_tests(workspace: Path) -> None:
    box = ToolBox(Workspace(workspace, write_filter=only_test_files), FILE_TOOLS)
    assert box.call("write_file", {"path": "tests/test_more.py", "content": "x = 1\n"}).ok
    assert box.call("write_file", {"path": "app/test_inline.py", "content": "x = 1\n"}).ok
    out = box.call("edit_file", {"path": "app/prices.py", "old": "float", "new": "int"})
    assert not out.ok
    assert "QA may only write test files" in out.text


def test_missing_workspace_is_a_workspace_error(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="does not exist"):
        Workspace(tmp_path / "nope")
    assert os.path.isdir(tmp_path)


def test_unencodable_content_is_an_error_not_a_crash(box: ToolBox) -> None:
    out = box.call("write_file", {"path": "a.txt", "content": "bad \ud800 surrogate"})
    assert not out.ok
    assert out.text.startswith("error: write_file failed")
