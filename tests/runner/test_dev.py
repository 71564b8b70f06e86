"""DEV: the tool loop (tool errors, nudge, turn cap), commits with the job trailer, idempotent redelivery."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from wf_common.jobs import TaskRef
from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.conftest import AgentRunner, JobFactory
from tests.runner.helpers import PRICES, PYTEST, git, last_message, log_subjects

NEW_PRICES = PRICES.replace(
    '    return float(text.replace("$", "").replace(",", ""))', "    raise NotImplementedError"
)
# A change that keeps the project's test passing.
FIXED_PRICES = PRICES.replace(
    '"""\'$1,234.50\' -> 1234.5"""', '"""\'$1,234.50\' -> 1234.5; commas are thousands"""'
)
SUMMARY = "Add price parser\n\nParses '$1,234.50' into 1234.5 and rejects bad input."


async def test_dev_writes_and_commits_with_the_job_trailer(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("list_files", path="."),
        Reply.tool("write_file", path="app/prices.py", content=NEW_PRICES),
        Reply.tool("write_file", path="docs/prices.md", content="# Prices\n"),
        Reply.tool("finish", status="pass", summary=SUMMARY),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    job = make_job("dev")
    result = await run_agent(job)
    assert result.status is Verdict.PASS
    # It never called run: at its first finish the runner ran the tests, and their failure went back
    # to the model as finish's error, with the failing test and the output's end.
    refusal = last_message(fake.requests[4])
    assert refusal["role"] == "tool"
    assert refusal["content"].startswith("error: the project's tests fail (`")
    assert "failing: tests/test_prices.py::test_parse_price" in refusal["content"]
    assert "NotImplementedError" in refusal["content"]
    # Its second finish stands (each reason is refused once); the summary says the tests fail.
    assert result.summary.startswith(SUMMARY + "\n\nDEV finished without running the tests; the runner ran")
    assert "1 failed" in result.summary
    assert result.test_run is not None
    assert not result.test_run.passed
    # Nothing changed between the two finishes: that one run is what the result carries.
    transcript = (workspace / ".workflow" / "agent_logs" / "T-002-dev-1.jsonl").read_text()
    assert transcript.count("running the test command in the") == 1
    head = git(workspace, "rev-parse", "HEAD")
    assert result.commits == [head]
    assert sorted(result.files_changed) == ["app/prices.py", "docs/prices.md"]
    message = git(workspace, "log", "-1", "--format=%B")
    assert message.splitlines()[0] == "T-002: Add price parser"
    assert "Parses '$1,234.50' into 1234.5" in message
    assert message.count("Add price parser") == 1
    assert message.splitlines()[-1] == f"Workflow-Job: {job.idempotency_key}"
    assert git(workspace, "log", "-1", "--format=%an") == "Workflow Hub DEV agent"
    # Only the agent's files: the transcript it wrote meanwhile is not committed, the tree is clean.
    assert git(workspace, "status", "--porcelain") == ""
    assert result.usage.llm_calls == 5
    assert result.usage.prompt_tokens > 0
    # The model saw the tool definitions and the tool results.
    assert {t["function"]["name"] for t in fake.requests[0]["tools"]} == {
        "list_files",
        "read_file",
        "search",
        "write_file",
        "edit_file",
        "run",
        "finish",
    }
    listing = last_message(fake.requests[1])
    assert listing["role"] == "tool"
    assert listing["tool_name"] == "list_files"
    assert "app/prices.py" in listing["content"]


async def test_redelivered_dev_job_does_not_commit_twice(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("write_file", path="app/prices.py", content=FIXED_PRICES),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    job = make_job("dev")
    first = await run_agent(job)
    second = await run_agent(job)  # same idempotency key, nothing queued for the model
    assert second.status is Verdict.PASS
    assert second.commits == first.commits
    assert second.files_changed == ["app/prices.py"]
    assert len(fake.requests) == 2
    assert log_subjects(workspace) == ["T-002: Add price parser", "Initial commit"]
    # A new attempt (rework) is a new job and commits again.
    fake.queue(
        Reply.tool("edit_file", path="app/prices.py", old="commas are", new="commas separate"),
        Reply.tool("finish", status="pass", summary="T-002: Raise ValueError for bad prices"),
    )
    third = await run_agent(make_job("dev", attempt=2))
    assert third.commits
    assert third.commits != first.commits
    assert log_subjects(workspace)[0] == "T-002: Raise ValueError for bad prices"


async def test_tool_errors_go_back_to_the_model(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("read_file", path="../../etc/passwd"),
        Reply.tool("edit_file", path="app/prices.py", old="nope", new="x"),
        Reply(tool_calls=[("write_file", {"path": ".git/hooks/pre-commit", "content": "x"})]),
        Reply.tool("finish", status="pass", summary="Nothing to change"),
        Reply.tool("finish", status="pass", summary="Nothing to change"),  # told to write: refused
        Reply.tool("finish", status="pass", summary="Nothing to change"),
    )
    result = await run_agent(make_job("dev"))
    # Every change was refused, so its "pass" is no delivery.
    assert result.status is Verdict.FAIL
    assert result.summary.startswith("DEV finished without changing any file")
    assert result.commits == []
    assert result.files_changed == []
    errors = [*(last_message(r) for r in fake.requests[1:4]), fake.requests[4]["messages"][-2]]
    assert all(m["role"] == "tool" and m["content"].startswith("error:") for m in errors)
    assert "outside the workspace" in errors[0]["content"]
    assert "occurs 0 times" in errors[1]["content"]
    assert ".git/" in errors[2]["content"]
    assert errors[3]["content"].startswith("error: DEV finished without changing any file. The task asks")
    # The turn after that refusal accepts only the tools that write, and says so; the finish it sent
    # anyway was refused, and then every tool is accepted again (its last finish stands).
    told = last_message(fake.requests[4])
    assert told["role"] == "user"
    assert told["content"].startswith("Nothing is written yet: call write_file(path, content)")
    assert "Only edit_file, write_file is accepted on this turn" in told["content"]
    assert last_message(fake.requests[5])["content"].startswith("error: finish is not accepted on this turn")
    assert len(fake.requests) == 6


async def test_turn_cap_fails_with_a_clear_summary(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    fake.queue(*[Reply.tool("list_files", path=".") for _ in range(5)])
    result = await run_agent(make_job("dev", max_turns=3))
    assert result.status is Verdict.FAIL
    assert result.summary == "agent did not finish within 3 turns"
    assert result.escalate
    assert len(fake.requests) == 3
    assert fake.pending == 2
    # The last turn accepts only finish and says so, with the same tool list as every turn (the
    # model server's prompt cache keeps serving the prefix); the list_files it asked for anyway was
    # not run, and the refusal is what the model would see next.
    last = fake.requests[-1]
    assert last["tools"] == fake.requests[0]["tools"]
    assert "last turn: call finish now" in last_message(last)["content"]
    assert "Only finish is accepted on this turn" in last_message(last)["content"]
    assert len([m for m in last["messages"] if m["role"] == "tool"]) == 2


async def test_narrowing_keeps_the_prompt_prefix_and_refuses_other_tools(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    # What Qwen2.5-Coder 0.5B does when it is done: it writes the same file with the same content again,
    # and when told to finish it writes it once more.
    write = Reply.tool("write_file", path="calc/add.py", content="def add(a, b):\n    return a + b\n")
    fake.queue(write, write, write, Reply.tool("finish", status="pass", summary="Add add"))
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert "calc/add.py" in result.files_changed
    first, second, third, fourth = fake.requests
    # Every request starts the same way: the same system prompt, the same tools, the history so far.
    for later in (second, third, fourth):
        assert later["tools"] == first["tools"]
        assert later["messages"][: len(first["messages"])] == first["messages"]
    assert later["messages"][0]["role"] == "system"
    # The third turn is told to finish; its write is refused, the refusal goes back to the model,
    # and the fourth turn still accepts only finish.
    told = last_message(third)
    assert told["role"] == "user"
    assert "made exactly this change already" in told["content"]
    assert "Only finish is accepted on this turn" in told["content"]
    refusal = [m for m in fourth["messages"] if m["role"] == "tool"][-1]
    assert refusal["content"].startswith("error: write_file is not accepted on this turn; not run")
    assert "Call finish" in refusal["content"]
    assert "Only finish is accepted on this turn" in last_message(fourth)["content"]


async def test_the_same_look_twice_narrows_to_the_tools_that_act(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    look = Reply.tool("list_files", path=".")
    give_up = Reply.tool("finish", status="fail", summary="Which file?")
    # Its first "fail" with nothing written goes back once (the next turn accepts only the tools that
    # write, so the finish after it is refused too); the one after that stands.
    fake.queue(look, look, look, give_up, give_up, give_up)
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.FAIL
    assert result.summary.startswith("Which file?")
    assert fake.pending == 0
    third, fourth = fake.requests[2], fake.requests[3]
    assert third["tools"] == fake.requests[0]["tools"]
    told = last_message(third)["content"]
    assert "already looked at exactly this" in told
    accepted = told.split("Only ", 1)[1]
    assert "finish" in accepted
    assert "write_file" in accepted
    assert not any(t in accepted for t in ("list_files", "read_file", "search"))
    refusal = [m for m in fourth["messages"] if m["role"] == "tool"][-1]
    assert refusal["content"].startswith("error: list_files is not accepted on this turn")


async def test_a_reply_without_tool_call_is_nudged_once(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    fake.queue(
        Reply.text("I have looked at it."),
        Reply.tool("write_file", path="app/prices.py", content=FIXED_PRICES),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert result.usage.llm_calls == 3
    nudge = last_message(fake.requests[1])
    assert nudge["role"] == "user"
    assert "call finish(status, summary)" in nudge["content"]

    fake.queue(
        Reply.text("Done."), Reply.text("Really done."), Reply.tool("finish", status="pass", summary="x")
    )
    stubborn = await run_agent(make_job("dev", attempt=2))
    assert stubborn.status is Verdict.FAIL
    assert "without calling finish" in stubborn.summary
    assert fake.pending == 1  # stopped after the second plain reply


async def test_finish_fail_escalates_without_committing(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("write_file", path="app/draft.py", content="x = 1\n"),
        Reply.tool("finish", status="fail", summary="Should prices be Decimal or float?"),
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.FAIL
    assert result.escalate
    assert result.summary == "Should prices be Decimal or float?"
    assert result.commits == []
    assert log_subjects(workspace) == ["Initial commit"]


async def test_transcript_is_written_as_json_lines(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.text("Thinking about prices"),
        Reply.tool("write_file", path="app/prices.py", content=FIXED_PRICES),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    await run_agent(make_job("dev"))
    path = workspace / ".workflow" / "agent_logs" / "T-002-dev-1.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds[:2] == ["prompt", "assistant"]
    assert "tool_call" in kinds
    assert "tool_result" in kinds
    assert records[0]["system"].startswith("# Agent Coding Standards")
    assert records[1]["content"] == "Thinking about prices"


# -- a "pass" that changed nothing ----------------------------------------------------------------


async def test_a_pass_without_any_change_fails_with_the_reason(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    # What a weak model does: it reads, rewrites a file with the content it already has, says "pass".
    fake.queue(
        Reply.tool("read_file", path="app/prices.py"),
        Reply.tool("write_file", path="app/prices.py", content=PRICES),
        Reply.tool("finish", status="pass", summary="Add price parser\n\nImplemented parse_price."),
        Reply.tool("finish", status="pass", summary="Add price parser\n\nImplemented parse_price."),
        Reply.tool("finish", status="pass", summary="Add price parser\n\nImplemented parse_price."),
    )
    before = git(workspace, "rev-parse", "HEAD")
    result = await run_agent(make_job("dev"))
    # Its first finish went back to it once, saying what is wrong and what to do (the next turn then
    # accepts only the tools that write, which refuses the second); the third stands.
    told = fake.requests[3]["messages"][-2]  # the last one tells the turn to write
    assert told["role"] == "tool"
    assert told["content"] == (
        "error: DEV finished without changing any file. The task asks for a change: write the code "
        "with write_file(path, content) (or edit_file for a small change to an existing file), then "
        "call finish again; or call finish(status='fail', summary=<what is unclear>)."
    )
    assert result.status is Verdict.FAIL
    assert result.summary.startswith("DEV finished without changing any file: the task asks for a change")
    assert "DEV said: Add price parser" in result.summary  # its own words reach the human
    assert result.commits == []
    assert result.files_changed == []
    assert git(workspace, "rev-parse", "HEAD") == before


async def test_rework_without_change_over_earlier_commits_passes_when_the_tests_pass(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("write_file", path="app/prices.py", content=PRICES + "# handles commas\n"),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    first = await run_agent(make_job("dev"))
    assert first.status is Verdict.PASS
    # QA reported a bug that is not one; DEV looks, changes nothing and says why.
    fake.queue(
        Reply.tool("read_file", path="app/prices.py"),
        Reply.tool("finish", status="pass", summary="Keep parse_price\n\nThe reported input already parses."),
    )
    again = await run_agent(make_job("dev", attempt=2))
    assert again.status is Verdict.PASS
    assert again.commits == []
    assert f"DEV finished without changing any file: this task's earlier commit {first.commits[0][:10]}" in (
        again.summary
    )
    assert again.test_run is not None
    assert again.test_run.passed


async def test_rework_without_change_fails_when_the_tests_fail(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("write_file", path="app/prices.py", content=NEW_PRICES),  # breaks test_parse_price
        Reply.tool("finish", status="pass", summary=SUMMARY),
        Reply.tool("finish", status="pass", summary=SUMMARY),  # the failing tests were shown once
    )
    assert (await run_agent(make_job("dev"))).commits
    fake.queue(Reply.tool("finish", status="pass", summary="Looks fine to me"))
    again = await run_agent(make_job("dev", attempt=2))
    assert again.status is Verdict.FAIL
    assert again.summary.startswith("DEV finished without changing any file on rework, and the tests fail")
    assert again.test_run is not None
    assert not again.test_run.passed


async def test_rework_of_another_task_does_not_count_as_earlier_work(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    other = TaskRef(key="T-009", title="Other", description="Something else.")
    fake.queue(
        Reply.tool("write_file", path="app/other.py", content="X = 1\n"),
        Reply.tool("finish", status="pass", summary="Add other"),
    )
    assert (await run_agent(make_job("dev", task=other))).commits
    fake.queue(*[Reply.tool("finish", status="pass", summary="Already done")] * 3)
    result = await run_agent(make_job("dev", attempt=2))  # T-002 has no commit of its own
    assert result.status is Verdict.FAIL
    assert result.summary.startswith("DEV finished without changing any file: the task asks")


async def test_a_refused_finish_lets_a_weak_model_make_the_change_it_claimed(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    fake.queue(
        Reply.tool("finish", status="pass", summary="Add price parser\n\nAdded it to app/prices.py."),
        Reply.tool("write_file", path="app/prices.py", content=FIXED_PRICES),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert result.files_changed == ["app/prices.py"]
    assert result.commits == [git(workspace, "rev-parse", "HEAD")]


async def test_failing_tests_at_finish_go_back_and_the_fix_passes_with_the_run(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    # A weak model finishes without running the tests; the failures it is shown lead it to the fix.
    fake.queue(
        Reply.tool("write_file", path="app/prices.py", content=NEW_PRICES),
        Reply.tool("finish", status="pass", summary=SUMMARY),
        Reply.tool("write_file", path="app/prices.py", content=PRICES + "\n"),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert "the project's tests fail" in last_message(fake.requests[2])["content"]
    # The run that let the second finish stand travels in the result: it passed.
    assert result.test_run is not None
    assert result.test_run.passed
    assert "1 passed" in result.summary
    assert result.files_changed == ["app/prices.py"]


async def test_a_failed_write_made_again_does_not_narrow_to_finish(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    # What Qwen2.5-Coder 0.5B did on the palindrome task: the same failing edit twice. It is not done:
    # the next turn is not narrowed to finish (only edit_file is off), and its write_file then runs.
    bad = Reply.tool("edit_file", path="README.md", old="nope", new="x")
    fake.queue(
        bad,
        bad,
        Reply.tool("write_file", path="app/prices.py", content=PRICES + "\n"),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert result.files_changed == ["app/prices.py"]
    assert all("Only finish is accepted" not in str(r["messages"]) for r in fake.requests)
    # The third turn is told that repeating the failed call will not help, and accepts every tool
    # but edit_file (write_file among them).
    told = last_message(fake.requests[2])["content"]
    assert "failed the same way" in told
    accepted = told.split("Only ", 1)[1]
    assert "write_file" in accepted
    assert "finish" in accepted
    assert "edit_file" not in accepted


async def test_a_failed_call_repeated_is_refused_on_the_next_turn(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner
) -> None:
    # What Qwen2.5-Coder 0.5B did on the chunk task: list_files on a path that does not exist, four
    # times, until the loop guard stopped it. The third one is refused (not run), the model is told
    # why, and it goes on with another tool.
    missing = Reply.tool("list_files", path="./*")
    fake.queue(
        missing,
        missing,
        missing,
        Reply.tool("write_file", path="app/prices.py", content=PRICES + "\n"),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert result.files_changed == ["app/prices.py"]
    refusal = [m for m in fake.requests[3]["messages"] if m["role"] == "tool"][-1]
    assert refusal["content"].startswith("error: list_files is not accepted on this turn; not run")
    # After a turn that used an accepted tool, every tool is accepted again.
    assert "Only " not in last_message(fake.requests[4])["content"]


async def test_dev_that_gives_up_before_writing_anything_is_asked_to_try_once(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    # What Qwen2.5-Coder 0.5B did on the run-length task: ran the tests of a project that has none
    # (pytest: no tests collected), then finish(fail). Sent back once, told to write; it does.
    fake.queue(
        Reply.tool("run", command=PYTEST),
        Reply.tool("finish", status="fail", summary="Test failed. No tests ran."),
        Reply.tool("write_file", path="app/prices.py", content=FIXED_PRICES),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert result.files_changed == ["app/prices.py"]
    told = [m for m in fake.requests[2]["messages"] if m["role"] == "tool"][-1]["content"]
    assert told.startswith("error: nothing is written yet, and the task asks for a change: try it first")
    assert "Only edit_file, write_file is accepted" in last_message(fake.requests[2])["content"]


# -- changes made with run ------------------------------------------------------------------------

STRINGS = "def shout(text: str) -> str:\n    return text.upper()\n"


def _human_edits(workspace: Path) -> None:
    """Uncommitted work a human left in the worktree before the job, and no .gitignore for caches."""
    git(workspace, "rm", "-q", ".gitignore")
    git(workspace, "commit", "-q", "-m", "Drop .gitignore")
    (workspace / "app" / "prices.py").write_text(PRICES + "# human: check the euro sign\n", encoding="utf-8")
    (workspace / "notes.txt").write_text("ask about rounding\n", encoding="utf-8")


async def test_files_made_with_run_are_committed_and_listed_without_junk_or_human_edits(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    _human_edits(workspace)
    # The tests with pytest's cache on (it leaves .pytest_cache/ behind), then bytecode (__pycache__/).
    pytest = PYTEST.replace(" -p no:cacheprovider", "")
    command = (
        "mkdir -p app/text && touch app/text/__init__.py"
        " && rm tests/__init__.py"  # a tracked file deleted with run
        " && ln -s /etc/hostname app/host"  # a symlink out of the worktree
        " && head -c 300000 /dev/zero > app/blob.bin"  # over the write limit
        " && mkdir -p node_modules/left-pad && echo 'module.exports = 1' > node_modules/left-pad/index.js"
        f" && {pytest} && {sys.executable} -m compileall -q app"
        f" && cat > app/strings.py <<'EOF'\n{STRINGS}EOF\n"
    )
    fake.queue(
        Reply.tool("run", command=command),
        Reply.tool("finish", status="pass", summary="Add shout\n\nUpper-cases text."),
    )
    job = make_job("dev")
    result = await run_agent(job)
    assert result.status is Verdict.PASS
    # The finish stood at once: made with run, the change counts (no "finished without changing").
    assert len(fake.requests) == 2
    assert (workspace / "app" / "__pycache__").is_dir()
    assert (workspace / ".pytest_cache").is_dir()
    head = git(workspace, "rev-parse", "HEAD")
    assert result.commits == [head]
    expected = ["app/strings.py", "app/text/__init__.py", "tests/__init__.py"]
    assert sorted(result.files_changed) == expected
    committed = git(workspace, "show", "--no-renames", "--name-only", "--format=", head).splitlines()
    assert sorted(committed) == expected
    assert git(workspace, "show", f"{head}:app/strings.py") == STRINGS.strip()
    # The human's edit and note are still there, uncommitted; the junk too, never committed.
    status = git(workspace, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert "M app/prices.py" in [s.strip() for s in status]
    assert "?? notes.txt" in status
    assert "?? app/host" in status
    assert "?? app/blob.bin" in status
    assert "?? node_modules/left-pad/index.js" in status
    assert any(line.startswith("?? app/__pycache__/") for line in status)
    assert not any(p.startswith(".workflow/") for p in committed)
    # What was left out, and why, is in the job's log.
    transcript = (workspace / ".workflow" / "agent_logs" / "T-002-dev-1.jsonl").read_text()
    assert "not committed, left in the worktree:" in transcript
    assert "app/host (a symbolic link to '/etc/hostname', outside the worktree)" in transcript
    assert "app/blob.bin (300000 bytes, over the 200000-byte limit)" in transcript
    assert "node_modules/left-pad/index.js (under node_modules/" in transcript
    assert "(under __pycache__/, a cache or installed dependencies: add it to .gitignore)" in transcript
    # Redelivered: the same commit, no second one.
    again = await run_agent(job)
    assert again.commits == [head]
    assert sorted(again.files_changed) == expected
    assert git(workspace, "rev-parse", "HEAD") == head


async def test_a_human_edit_changed_further_with_run_is_left_out(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    _human_edits(workspace)
    fake.queue(
        # The agent edits the file the human left dirty, and a clean one: only the clean one is its own.
        Reply.tool("run", command="sed -i 's/euro/yen/' app/prices.py && echo 'X = 1' >> app/__init__.py"),
        Reply.tool("finish", status="pass", summary="Add X"),
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert result.files_changed == ["app/__init__.py"]
    assert git(workspace, "show", "--name-only", "--format=", "HEAD") == "app/__init__.py"
    assert "# human: check the yen sign" in (workspace / "app" / "prices.py").read_text()
    assert git(workspace, "status", "--porcelain").splitlines()[0] == "M app/prices.py"
    transcript = (workspace / ".workflow" / "agent_logs" / "T-002-dev-1.jsonl").read_text()
    assert "app/prices.py (already changed before the job started; commit it yourself)" in transcript


async def test_only_junk_made_with_run_is_still_no_change(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    _human_edits(workspace)
    fake.queue(
        Reply.tool("run", command=PYTEST.replace(" -p no:cacheprovider", "")),  # caches only
        *[Reply.tool("finish", status="pass", summary="Add price parser")] * 3,
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.FAIL
    assert result.summary.startswith("DEV finished without changing any file")
    assert result.commits == []
    assert log_subjects(workspace)[0] == "Drop .gitignore"


async def test_a_file_named_like_a_pathspec_commits_only_itself(
    fake: ScriptedOllama, make_job: JobFactory, run_agent: AgentRunner, workspace: Path
) -> None:
    _human_edits(workspace)
    fake.queue(
        Reply.tool("write_file", path="*", content="star\n"),  # as a git pathspec: every file
        Reply.tool("run", command="echo glob > ':(glob)**'"),
        Reply.tool("run", command=PYTEST),
        Reply.tool("finish", status="pass", summary="Add odd names"),
    )
    result = await run_agent(make_job("dev"))
    assert result.status is Verdict.PASS
    assert sorted(result.files_changed) == ["*", ":(glob)**"]
    assert git(workspace, "status", "--porcelain").splitlines() == ["M app/prices.py", "?? notes.txt"]
