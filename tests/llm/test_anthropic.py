"""The anthropic adapter against ScriptedAnthropic: the Messages event stream, tool_use blocks with
input_json_delta, tool-forced structured output, errors, 429 and 529."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from wf_agent_runner.llm import AnthropicAdapter, LLMError, LLMModelNotFound, LLMStreamError, LLMUnavailable
from wf_common.jobs import breakdown_json_schema

from tests.fakes.anthropic import Reply, ScriptedAnthropic
from tests.llm.common import KEY, USER, WRITE_FILE, dead_url

MODEL = "claude-sonnet-4-5"


@pytest.fixture
def fake() -> Iterator[ScriptedAnthropic]:
    with ScriptedAnthropic(models=(MODEL,), api_key=KEY) as server:
        yield server


@pytest.fixture
async def llm(fake: ScriptedAnthropic) -> AsyncIterator[AnthropicAdapter]:
    adapter = AnthropicAdapter(fake.base_url, MODEL, api_key=KEY, timeout_seconds=10, backoff_base=0.01)
    yield adapter
    await adapter.aclose()


async def test_streams_text_with_usage(fake: ScriptedAnthropic, llm: AnthropicAdapter) -> None:
    fake.queue(Reply.text("one two three"))
    pieces: list[str] = []

    reply = await llm.chat([{"role": "system", "content": "be brief"}, *USER], on_token=pieces.append)

    assert pieces == ["one ", "two ", "three"]
    assert reply.content == "one two three"
    assert reply.usage.completion_tokens == 3
    assert reply.usage.prompt_tokens >= 1
    assert reply.done_reason == "end_turn"
    body, headers = fake.requests[0], fake.headers[0]
    assert body["system"] == "be brief"
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"


async def test_tool_use_blocks_from_input_json_deltas(fake: ScriptedAnthropic, llm: AnthropicAdapter) -> None:
    fake.queue(
        Reply(content="Writing it.", tool_calls=[("write_file", {"path": "a.py", "content": "x = 1\n"})])
    )

    reply = await llm.chat(USER, tools=[WRITE_FILE])

    assert reply.content == "Writing it."
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("write_file", {"path": "a.py", "content": "x = 1\n"})
    ]
    assert reply.tool_calls[0].id.startswith("toolu_")
    assert reply.done_reason == "tool_use"
    assert fake.requests[0]["tools"][0]["input_schema"]["required"] == ["path", "content"]


async def test_tool_results_go_back_as_tool_result_blocks(
    fake: ScriptedAnthropic, llm: AnthropicAdapter
) -> None:
    fake.queue(Reply.tool("write_file", path="a.py", content="1"), Reply.text("done"))
    history: list[dict[str, Any]] = list(USER)
    first = await llm.chat(history, tools=[WRITE_FILE])
    history += [first.as_message(), {"role": "tool", "content": "wrote a.py", "tool_name": "write_file"}]

    # The fake rejects tool_result ids it did not see in a tool_use block and non-alternating turns.
    assert (await llm.chat(history, tools=[WRITE_FILE])).content == "done"
    turns = fake.requests[1]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": first.tool_calls[0].id, "content": "wrote a.py"}
    ]


async def test_structured_output_is_a_forced_tool(fake: ScriptedAnthropic, llm: AnthropicAdapter) -> None:
    answer = {"tasks": [{"title": "Add x", "description": "d", "acceptance_criteria": ["a"], "priority": 5}]}
    fake.queue(Reply.json(answer))

    reply = await llm.chat(USER, format=breakdown_json_schema())

    assert json.loads(reply.content) == answer
    assert reply.tool_calls == []
    body = fake.requests[0]
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}
    assert "20000" not in json.dumps(body["tools"][0]["input_schema"])


@pytest.mark.parametrize("status", [429, 529])
async def test_rate_limit_and_overload_are_retried(
    fake: ScriptedAnthropic, llm: AnthropicAdapter, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    fake.queue(Reply(error_status=status, error_message="Overloaded"), Reply.text("ok"))
    caplog.set_level(logging.WARNING)

    assert (await llm.chat(USER)).content == "ok"
    assert len(fake.requests) == 2
    assert f"answered {status}; retry 1/3" in caplog.text


async def test_overload_that_persists_is_retryable(fake: ScriptedAnthropic) -> None:
    fake.queue(*[Reply(error_status=529, error_message="Overloaded")] * 2)
    async with AnthropicAdapter(fake.base_url, MODEL, api_key=KEY, max_retries=1, backoff_base=0.01) as llm:
        with pytest.raises(LLMError, match=r"overloaded .*HTTP 529: Overloaded") as err:
            await llm.chat(USER)
    assert err.value.retryable


async def test_missing_key_names_the_setting(fake: ScriptedAnthropic) -> None:
    async with AnthropicAdapter(fake.base_url, MODEL) as llm:
        with pytest.raises(LLMError, match=r"ANTHROPIC_API_KEY"):
            await llm.chat(USER)


async def test_unknown_model(fake: ScriptedAnthropic) -> None:
    async with AnthropicAdapter(fake.base_url, "claude-0", api_key=KEY) as llm:
        with pytest.raises(LLMModelNotFound, match="'claude-0' is not available"):
            await llm.chat(USER)
        assert (await llm.capabilities()).model_found is False


async def test_error_event_mid_stream(fake: ScriptedAnthropic, llm: AnthropicAdapter) -> None:
    fake.queue(Reply.text("partial", mid_stream_error="Overloaded"), Reply.text("cut", omit_done=True))
    with pytest.raises(LLMStreamError, match="overloaded_error mid-answer: Overloaded") as err:
        await llm.chat(USER)
    assert err.value.retryable
    with pytest.raises(LLMStreamError, match="without message_stop"):
        await llm.chat(USER)


async def test_unreachable_and_capabilities(fake: ScriptedAnthropic, llm: AnthropicAdapter) -> None:
    caps = await llm.capabilities()
    assert caps.model_found is True
    assert caps.native_tools is True
    async with AnthropicAdapter(dead_url(), MODEL) as dead:
        with pytest.raises(LLMUnavailable, match="connection refused"):
            await dead.chat(USER)
        assert (await dead.capabilities()).reachable is False


async def test_hung_server_times_out_with_the_fix(fake: ScriptedAnthropic) -> None:
    fake.queue(Reply.text("late", delay=60))
    async with AnthropicAdapter(fake.base_url, MODEL, api_key=KEY, timeout_seconds=0.5) as llm:
        with pytest.raises(LLMUnavailable, match="did not") as err:
            await llm.chat(USER)
    assert "timeout_seconds" in str(err.value)
    assert err.value.retryable
    assert KEY not in str(err.value)
