"""Tool calls that survive weak models: parsing recorded replies, emulated tool calling for models
without native support (over a real socket), repair of calls printed as text, and the lenient PM
breakdown. The replies under replies/ are what small local models (Qwen2.5-Coder 0.5B-7B, Llama 3.2
3B) print."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from wf_agent_runner.agents.repair import BreakdownUnreadable, read_breakdown
from wf_agent_runner.llm import OllamaAdapter, OpenAIAdapter, ToolCallAdapter
from wf_agent_runner.llm.toolcalls import parse_tool_calls
from wf_agent_runner.tools import SCHEMAS

from tests.fakes.ollama import Reply, ScriptedOllama, _words
from tests.fakes.openai import ScriptedOpenAI

REPLIES = Path(__file__).parent / "replies"
TOOLS = list(SCHEMAS.values())
USER = [{"role": "system", "content": "You are DEV."}, {"role": "user", "content": "Add function add"}]


def reply(name: str) -> str:
    return (REPLIES / name).read_text(encoding="utf-8")


def calls(name: str) -> list[tuple[str, dict[str, Any]]]:
    return [(c.name, c.arguments) for c in parse_tool_calls(reply(name), TOOLS).calls]


# -- parsing recorded replies ----------------------------------------------------------------------


def test_qwen_tool_call_tag() -> None:
    assert calls("qwen_tool_call_tag.txt") == [
        ("write_file", {"path": "calc/add.py", "content": "def add(a, b):\n    return a + b\n"})
    ]


def test_two_fenced_calls_in_one_reply() -> None:
    assert [name for name, _ in calls("fenced_two_calls.md")] == ["write_file", "write_file"]
    assert calls("fenced_two_calls.md")[1][1]["content"] == "def add(a, b):\n    return a + b\n"


def test_think_block_dropped_and_list_coerced_to_string() -> None:
    assert calls("think_then_bare_finish.txt") == [
        ("finish", {"status": "pass", "summary": "Add calc.add\nadd(2, 3) returns 5"})
    ]


def test_openai_shape_printed_as_text() -> None:
    assert calls("openai_shape_in_text.txt") == [("read_file", {"path": "README.md"})]


def test_unknown_tool_and_missing_argument_are_reported() -> None:
    parsed = parse_tool_calls(reply("wrong_tool_and_missing_argument.txt"), TOOLS)
    assert parsed.calls == []
    assert any("there is no tool 'run_tests'" in e for e in parsed.errors)
    assert "write_file: missing required argument 'content'" in parsed.errors


def test_prose_is_not_a_call() -> None:
    parsed = parse_tool_calls('I set {"x": 1} in the config and I am done.', TOOLS)
    assert parsed.calls == []
    assert parsed.errors == []


def test_bad_enum_value_is_an_error() -> None:
    parsed = parse_tool_calls('{"name": "finish", "arguments": {"status": "ok", "summary": "s"}}', TOOLS)
    assert parsed.calls == []
    assert "must be one of ['pass', 'fail']" in parsed.errors[0]


# -- emulated tool calling over a real server ------------------------------------------------------


class OllamaWithoutTools(ScriptedOllama):
    """Ollama serving a model whose template has no tool support (e.g. gemma2, phi3)."""

    def __enter__(self) -> OllamaWithoutTools:
        self.start()
        return self

    async def _show(self, request: Request) -> Response:
        return JSONResponse({"capabilities": ["completion"], "details": {"family": "gemma2"}})


@pytest.fixture
def plain_ollama() -> Iterator[OllamaWithoutTools]:
    with OllamaWithoutTools(models=("gemma2:2b",)) as server:
        yield server


async def test_model_without_tools_gets_emulated_calls(plain_ollama: OllamaWithoutTools) -> None:
    plain_ollama.queue(Reply.text(reply("qwen_tool_call_tag.txt")))
    async with ToolCallAdapter(OllamaAdapter(plain_ollama.url, "gemma2:2b")) as llm:
        caps = await llm.capabilities()
        result = await llm.chat(USER, tools=TOOLS)

    assert not caps.native_tools
    assert "NO native tool support: using emulated tool calls" in caps.detail
    assert [c.name for c in result.tool_calls] == ["write_file"]
    sent = plain_ollama.requests[0]
    assert "tools" not in sent
    assert "## Tools" in sent["messages"][0]["content"]
    assert "write_file(path: string, content: string)" in sent["messages"][0]["content"]
    # The reply is constrained to one call: each tool's name tied to its own arguments.
    variants = sent["format"]["anyOf"]
    assert [v["properties"]["name"]["const"] for v in variants] == [t["function"]["name"] for t in TOOLS]
    finish = next(v for v in variants if v["properties"]["name"]["const"] == "finish")
    assert finish["properties"]["arguments"]["properties"]["status"]["enum"] == ["pass", "fail"]


async def test_a_narrowed_turn_constrains_the_reply_to_the_tools_it_accepts(
    plain_ollama: OllamaWithoutTools,
) -> None:
    plain_ollama.queue(
        Reply.text(reply("qwen_tool_call_tag.txt")), Reply.text(reply("qwen_tool_call_tag.txt"))
    )
    async with ToolCallAdapter(OllamaAdapter(plain_ollama.url, "gemma2:2b")) as llm:
        await llm.chat(USER, tools=TOOLS)
        await llm.chat(USER, tools=TOOLS, accepted={"write_file"})
    every, narrowed = plain_ollama.requests
    # The same system prompt (every tool described: the server's prompt cache keeps serving it)...
    assert narrowed["messages"] == every["messages"]
    # ...but the grammar of the narrowed turn allows a call to write_file only.
    assert len(every["format"]["anyOf"]) == len(TOOLS)
    assert [v["properties"]["name"]["const"] for v in narrowed["format"]["anyOf"]] == ["write_file"]


async def test_emulated_history_and_error_feedback() -> None:
    with ScriptedOpenAI(models=("tiny",)) as fake:
        fake.queue(
            Reply.text(reply("wrong_tool_and_missing_argument.txt")), Reply.text(reply("fenced_two_calls.md"))
        )
        inner = OpenAIAdapter(fake.base_url, "tiny", tool_calls="emulated")
        async with ToolCallAdapter(inner) as llm:
            history: list[dict[str, Any]] = [
                *USER,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "list_files", "arguments": {"path": "."}}}],
                },
                {"role": "tool", "content": "README.md", "tool_name": "list_files"},
            ]
            result = await llm.chat(history, tools=TOOLS)

    assert [c.name for c in result.tool_calls] == ["write_file", "write_file"]
    first, second = fake.requests
    assert "tools" not in first
    assert "anyOf" in first["response_format"]["json_schema"]["schema"]
    texts = [m["content"] for m in first["messages"]]
    assert '"name": "list_files"' in texts[2]  # the earlier call, as text
    assert texts[3] == "Result of list_files:\nREADME.md"
    feedback = second["messages"][-1]["content"]
    assert "there is no tool 'run_tests'" in feedback
    assert "missing required argument 'content'" in feedback
    # Both model calls count: the rejected reply and the corrected one.
    spoken = [reply("wrong_tool_and_missing_argument.txt"), reply("fenced_two_calls.md")]
    assert result.usage.completion_tokens == sum(len(_words(t)) for t in spoken)


async def test_native_call_to_a_tool_that_does_not_exist_switches_to_emulated() -> None:
    # What Qwen2.5-Coder 0.5B answered natively (llama-cpp-python) to "Create calc/add.py with add(a, b)".
    write = '{"name": "write_file", "arguments": {"path": "calc/add.py", "content": "x"}}'
    with ScriptedOpenAI(models=("tiny",)) as fake:
        fake.queue(
            Reply.text(reply("qwen05_native_unknown_tool.md")),
            Reply.text(write),
            Reply.text('{"name": "finish", "arguments": {"status": "pass", "summary": "Add add"}}'),
        )
        async with ToolCallAdapter(OpenAIAdapter(fake.base_url, "tiny")) as llm:
            first = await llm.chat(USER, tools=TOOLS)
            second = await llm.chat(USER, tools=TOOLS)

    assert [c.name for c in first.tool_calls] == ["write_file"]
    assert [c.name for c in second.tool_calls] == ["finish"]  # it stays emulated
    native, redone, later = fake.requests
    assert native["tools"]
    assert "tools" not in redone
    assert "tools" not in later
    assert "anyOf" in redone["response_format"]["json_schema"]["schema"]
    assert redone["messages"][-1] == native["messages"][-1]  # the same turn again, not a new one
    # Both calls of the first turn count.
    assert first.usage.completion_tokens == len(_words(reply("qwen05_native_unknown_tool.md"))) + len(
        _words(write)
    )


async def test_native_reply_with_call_as_text_is_repaired() -> None:
    with ScriptedOllama(models=("qwen2.5-coder:0.5b",)) as fake:
        fake.queue(Reply.text(reply("think_then_bare_finish.txt")))
        async with ToolCallAdapter(OllamaAdapter(fake.url, "qwen2.5-coder:0.5b")) as llm:
            result = await llm.chat(USER, tools=TOOLS)
    assert fake.requests[0]["tools"]  # sent natively
    assert [(c.name, c.arguments["status"]) for c in result.tool_calls] == [("finish", "pass")]


# -- the PM breakdown ------------------------------------------------------------------------------


def test_breakdown_with_think_fence_string_criteria_and_string_priority() -> None:
    breakdown, notes = read_breakdown(reply("pm_think_fenced_loose.txt"))
    first, second = breakdown.tasks
    assert first.acceptance_criteria == ["add(2, 3) returns 5", "add(-1, 1) returns 0"]
    assert (first.priority, second.priority) == (7, 5)
    assert (first.depends_on, second.depends_on) == ([], [0])
    assert any("acceptance_criteria was a string" in n for n in notes)


def test_bare_list_with_other_key_names_and_word_priorities() -> None:
    breakdown, _ = read_breakdown(reply("pm_bare_list_loose.txt"))
    first, second = breakdown.tasks
    assert first.title == "Add function subtract"
    assert first.description == "Add function subtract"
    assert first.acceptance_criteria == ["subtract(5, 3) returns 2"]
    assert (first.priority, second.priority) == (8, 2)
    assert second.depends_on == [0]  # named by title


def test_dependencies_counted_from_one_or_on_itself_are_repaired() -> None:
    # What Qwen2.5-Coder-0.5B answered on every try in `make test-real-llm`: "depends_on": [1] on the
    # first task (itself, counted from 1), which failed validation three times over.
    breakdown, notes = read_breakdown(reply("pm_self_and_one_based_deps.txt"))
    first, second = breakdown.tasks
    assert (first.depends_on, second.depends_on) == ([], [0])
    assert any("counted from 1" in n for n in notes)
    assert any("named the task itself" in n for n in notes)


def test_a_dependency_on_no_task_is_dropped() -> None:
    # The shape Qwen2.5-Coder-0.5B answered three times over in `make test-real-llm` (2026-12-01):
    # one task depending on task 2, rejected with "tasks[0].depends_on: 2 is not an index into tasks".
    breakdown, notes = read_breakdown(reply("pm_dangling_dependency.txt"))
    (only,) = breakdown.tasks
    assert only.depends_on == []
    assert only.acceptance_criteria == ["add(2, 3) returns 5", "multiply(2, 3) returns 6"]
    assert any("named no task of the breakdown ([2])" in n for n in notes)


def test_zero_based_dependencies_are_left_alone() -> None:
    base = {"description": "d", "acceptance_criteria": ["a"], "priority": 5}
    tasks = [{**base, "title": "Add x", "depends_on": []}, {**base, "title": "Add y", "depends_on": [0]}]
    breakdown, _ = read_breakdown("Here it is: " + json.dumps({"tasks": tasks}))
    assert [t.depends_on for t in breakdown.tasks] == [[], [0]]


def test_unclear_breakdowns_still_fail() -> None:
    with pytest.raises(BreakdownUnreadable, match="no JSON object with a task list"):
        read_breakdown(reply("pm_unclear.txt"))
    task = {"title": "Add x", "description": "d", "acceptance_criteria": ["a"], "priority": 42}
    with pytest.raises(ValidationError, match="less than or equal to 10"):
        read_breakdown(json.dumps({"tasks": [task]}))
