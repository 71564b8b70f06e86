"""The `make bench-agents` harness, run on two of its tasks with a scripted model over the OpenAI wire
protocol: single-shot DEV gets palindrome wrong, the pipeline's QA catches it with a failing test and
DEV fixes it from the bug; the hidden tests decide, and the report counts runs and tokens."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from wf_cli.embedded.ports import free_port
from wf_common.config import LLMBackendConfig

from benchmarks.agents import Bench, load_outcomes, load_tasks, main, record, render, run_all, summary
from tests.fakes.openai import Reply, ScriptedOpenAI

FIZZ = (
    "def fizzbuzz(n):\n    out = []\n    for i in range(1, n + 1):\n"
    "        word = 'Fizz' * (i % 3 == 0) + 'Buzz' * (i % 5 == 0)\n"
    "        out.append(word or str(i))\n"
    "    return out\n"
)
PAL_WRONG = (
    "def is_palindrome(text):\n    return text == text[::-1]\n"  # ignores neither case nor punctuation
)
PAL_RIGHT = (
    "def is_palindrome(text):\n    s = [c.lower() for c in text if c.isalnum()]\n    return s == s[::-1]\n"
)
PAL_TEST = (
    "from palindrome import is_palindrome\n\n\ndef test_palindrome_sentence():\n"
    "    assert is_palindrome('A man, a plan, a canal: Panama')\n"
)
FIZZ_TEST = (
    "from fizzbuzz import fizzbuzz\n\n\ndef test_fizzbuzz():\n    assert fizzbuzz(3) == ['1', '2', 'Fizz']\n"
)


class BenchModel:
    """DEV writes the solution (palindrome wrong until a bug names test_palindrome_sentence), QA
    writes a test; each finishes after its write."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[str] = []

    def __call__(self, body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        prompt = "\n".join(str(m.get("content") or "") for m in messages if m["role"] in ("system", "user"))
        role = "qa" if "You verify the task's acceptance criteria" in prompt else "dev"
        done = any(m["role"] == "tool" for m in messages)
        with self.lock:
            self.calls.append(role)
        if done:
            return Reply.tool("finish", status="pass", summary=f"{role} done")
        if "palindrome" in prompt:
            if role == "qa":
                return Reply.tool("write_file", path="tests/test_palindrome.py", content=PAL_TEST)
            fixed = "test_palindrome_sentence" in prompt
            return Reply.tool("write_file", path="palindrome.py", content=PAL_RIGHT if fixed else PAL_WRONG)
        if role == "qa":
            return Reply.tool("write_file", path="tests/test_fizzbuzz.py", content=FIZZ_TEST)
        return Reply.tool("write_file", path="fizzbuzz.py", content=FIZZ)


def test_the_task_set_has_statements_and_hidden_tests() -> None:
    tasks = load_tasks()
    assert len(tasks) >= 20
    assert all(t.title and t.description and t.criteria and "def test_" in t.hidden_test for t in tasks)


async def test_single_shot_vs_pipeline_on_a_scripted_model(tmp_path: Path) -> None:
    model = BenchModel()
    with ScriptedOpenAI(model, models=("scripted",)) as fake:
        llm = LLMBackendConfig(adapter="openai", host=fake.base_url, model="scripted", timeout_seconds=30)
        bench = Bench(llm, tmp_path, rework_limit=2, max_turns=5)
        outcomes = await run_all(bench, load_tasks(only=["01_fizzbuzz", "02_palindrome"]))

    got = {(o.task, o.mode): (o.passed, o.executions) for o in outcomes}
    assert got == {
        ("01_fizzbuzz", "single"): (True, 1),
        ("01_fizzbuzz", "pipeline"): (True, 2),  # DEV, QA
        ("02_palindrome", "single"): (False, 1),
        ("02_palindrome", "pipeline"): (True, 4),  # DEV, QA fails, DEV fixes, QA passes
    }
    assert all(o.prompt_tokens > 0 and o.completion_tokens > 0 for o in outcomes)
    rates = summary(outcomes)
    assert (rates["single"]["pass_rate"], rates["pipeline"]["pass_rate"]) == (0.5, 1.0)
    text = render(outcomes)
    assert "single: 50% of 2 tasks pass the hidden tests" in text
    assert "pipeline: 100% of 2 tasks pass the hidden tests" in text

    perf = tmp_path / "performance.md"
    perf.write_text("# Performance\n", encoding="utf-8")
    record(outcomes, "scripted", perf)
    assert "| pipeline | 2 | 100% |" in perf.read_text(encoding="utf-8")


async def test_an_interrupted_run_resumes_and_every_execution_shares_its_roles_prefix(tmp_path: Path) -> None:
    model = BenchModel()
    progress = tmp_path / "outcomes.jsonl"
    fizz = load_tasks(only=["01_fizzbuzz"])
    with ScriptedOpenAI(model, models=("scripted",)) as fake:
        llm = LLMBackendConfig(
            adapter="openai", host=fake.base_url, model="scripted", timeout_seconds=30, max_tokens=256
        )
        # The first run stops after single-shot (as if interrupted), leaving half a line behind.
        first = await run_all(Bench(llm, tmp_path / "a", max_turns=5), fizz, ("single",), resume=progress)
        with progress.open("a", encoding="utf-8") as f:
            f.write('{"task": "01_fizzbuzz", "mo')
        calls_before = len(model.calls)
        again = await run_all(Bench(llm, tmp_path / "b", max_turns=5), fizz, resume=progress)
        requests = list(fake.requests)

    assert [(o.task, o.mode, o.passed) for o in first] == [("01_fizzbuzz", "single", True)]
    # The second run did only the pipeline (DEV, QA: 2 turns each) and reports both modes.
    assert [(o.mode, o.executions) for o in again] == [("single", 1), ("pipeline", 2)]
    assert again[0] == first[0]
    assert model.calls[calls_before:] == ["dev", "dev", "qa", "qa"]
    assert [o.mode for o in load_outcomes(progress)] == ["single", "pipeline"]  # the cut line is skipped
    # A bounded reply, and per role one system message and one tool list for every turn of every
    # execution: the prefix a server's prompt cache keeps.
    assert {r.get("max_tokens") for r in requests} == {256}
    by_role: dict[str, set[str]] = {}
    for r in requests:
        system = r["messages"][0]
        assert system["role"] == "system"
        role = "qa" if "You verify the task's acceptance criteria" in system["content"] else "dev"
        by_role.setdefault(role, set()).add(json.dumps([system, r.get("tools")], sort_keys=True))
    assert sorted(by_role) == ["dev", "qa"]
    assert all(len(prefixes) == 1 for prefixes in by_role.values())


def test_a_model_server_that_goes_away_stops_the_run_with_a_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    progress = tmp_path / "outcomes.jsonl"
    args = ["--base-url", f"http://127.0.0.1:{free_port()}/v1", "--model", "gone", "--max-turns", "2"]
    code = main([*args, "--tasks", "01_fizzbuzz", "--resume", str(progress)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "bench-agents: stopped: could not reach the OpenAI-compatible server at http://127.0.0.1:"
    )
    assert f"the outcomes so far are in {progress}, run again to continue" in err
    assert load_outcomes(progress) == []  # nothing half-measured was recorded
