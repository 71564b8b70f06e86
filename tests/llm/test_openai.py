"""The openai adapter against ScriptedOpenAI: SSE chunks, tool_calls deltas, usage, errors, 429."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from wf_agent_runner.llm import (
    LLMError,
    LLMModelNotFound,
    LLMStreamError,
    LLMUnavailable,
    OpenAIAdapter,
    ToolCall,
)
from wf_common.jobs import breakdown_json_schema

from tests.fakes.openai import Reply, ScriptedOpenAI
from tests.llm.common import KEY, USER, WRITE_FILE, dead_url

MODEL = "qwen2.5-coder-0.5b-instruct"


@pytest.fixture
def fake() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(models=(MODEL,), api_key=KEY) as server:
        yield server


@pytest.fixture
async def llm(fake: ScriptedOpenAI) -> AsyncIterator[OpenAIAdapter]:
    adapter = OpenAIAdapter(fake.base_url, MODEL, api_key=KEY, timeout_seconds=10, backoff_base=0.01)
    yield adapter
    await adapter.aclose()


async def test_streams_text_with_usage(fake: ScriptedOpenAI, llm: OpenAIAdapter) -> None:
    fake.queue(Reply.text("one two three"))
    pieces: list[str] = []

    reply = await llm.chat(USER, on_token=pieces.append)

    assert pieces == ["one ", "two ", "three"]
    assert reply.content == "one two three"
    assert reply.usage.completion_tokens == 3
    assert reply.usage.prompt_tokens >= 1
    assert reply.done_reason == "stop"
    assert fake.headers[0]["authorization"] == f"Bearer {KEY}"
    assert fake.requests[0]["stream_options"] == {"include_usage": True}


async def test_a_server_without_usage_gets_an_estimate_not_zeros(caplog: pytest.LogCaptureFixture) -> None:
    with ScriptedOpenAI(models=(MODEL,), reports_usage=False) as quiet:
        quiet.queue(Reply.text("one two three"), Reply.text("four"))
        async with OpenAIAdapter(quiet.base_url, MODEL, timeout_seconds=10) as adapter:
            with caplog.at_level(logging.WARNING):
                first = await adapter.chat([{"role": "user", "content": "x" * 400}])
                second = await adapter.chat(USER)

    assert first.usage.completion_tokens == 3  # one per streamed piece
    assert 100 <= first.usage.prompt_tokens <= 120  # 400 characters and the JSON around them, / 4
    assert second.usage.completion_tokens == 1
    warned = [r for r in caplog.records if "reports no token usage" in r.getMessage()]
    assert len(warned) == 1  # once per server, not per call


async def test_tool_call_deltas_are_joined(fake: ScriptedOpenAI, llm: OpenAIAdapter) -> None:
    fake.queue(
        Reply(
            tool_calls=[
                ("write_file", {"path": "a.py", "content": "x = 1\n"}),
                ("finish", {"status": "pass"}),
            ]
        )
    )

    reply = await llm.chat(USER, tools=[WRITE_FILE])

    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("write_file", {"path": "a.py", "content": "x = 1\n"}),
        ("finish", {"status": "pass"}),
    ]
    assert all(c.id.startswith("call_") for c in reply.tool_calls)
    assert reply.done_reason == "tool_calls"
    assert fake.requests[0]["tools"][0]["function"]["name"] == "write_file"


async def test_history_pairs_tool_results_with_call_ids(fake: ScriptedOpenAI, llm: OpenAIAdapter) -> None:
    fake.queue(Reply.text("done"))
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        *USER,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [ToolCall("read_file", {"path": "a"}, id="call_7").to_dict()],
        },
        {"role": "tool", "content": "file text", "tool_name": "read_file"},
    ]

    await llm.chat(history, tools=[WRITE_FILE])

    sent = fake.requests[0]["messages"]
    assert sent[2]["tool_calls"][0] == {
        "id": "call_7",
        "type": "function",
        "function": {"name": "read_file", "arguments": json.dumps({"path": "a"})},
    }
    assert sent[3] == {"role": "tool", "tool_call_id": "call_7", "content": "file text"}


async def test_structured_output_sends_a_schema_without_large_bounds(
    fake: ScriptedOpenAI, llm: OpenAIAdapter
) -> None:
    fake.queue(Reply.json({"tasks": []}))

    reply = await llm.chat(USER, format=breakdown_json_schema())

    fmt = fake.requests[0]["response_format"]
    assert fmt["type"] == "json_schema"
    sent = json.dumps(fmt["json_schema"]["schema"])
    assert "20000" not in sent  # description maxLength would crash llama.cpp's grammar
    assert "acceptance_criteria" in sent
    assert json.loads(reply.content) == {"tasks": []}


async def test_rate_limit_is_retried_after_retry_after(
    fake: ScriptedOpenAI, llm: OpenAIAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    fake.queue(Reply(error_status=429, error_message="Rate limit reached"), Reply.text("finally"))
    caplog.set_level(logging.WARNING)

    reply = await llm.chat(USER)

    assert reply.content == "finally"
    assert len(fake.requests) == 2
    assert "answered 429; retry 1/3" in caplog.text


async def test_rate_limit_that_persists_is_a_retryable_error(fake: ScriptedOpenAI) -> None:
    fake.queue(*[Reply(error_status=429, error_message="Rate limit reached")] * 3)
    async with OpenAIAdapter(fake.base_url, MODEL, api_key=KEY, max_retries=2, backoff_base=0.01) as llm:
        with pytest.raises(LLMError, match="rate-limited or overloaded") as err:
            await llm.chat(USER)
    assert err.value.retryable
    assert len(fake.requests) == 3


async def test_wrong_key_says_how_to_set_it_and_never_shows_it(fake: ScriptedOpenAI) -> None:
    wrong = "sk-wrong-0123456789abcdef"
    async with OpenAIAdapter(fake.base_url, MODEL, api_key=wrong) as llm:
        with pytest.raises(LLMError, match=r"refused the API key .*api_key: \$\{OPENAI_API_KEY\}") as err:
            await llm.chat(USER)
    assert not err.value.retryable
    assert wrong not in str(err.value)
    assert wrong not in repr(llm)


async def test_unknown_model(fake: ScriptedOpenAI) -> None:
    async with OpenAIAdapter(fake.base_url, "gpt-9", api_key=KEY) as llm:
        with pytest.raises(LLMModelNotFound, match="'gpt-9' is not available"):
            await llm.chat(USER)


async def test_mid_stream_error_and_missing_end(fake: ScriptedOpenAI, llm: OpenAIAdapter) -> None:
    fake.queue(Reply.text("partial", mid_stream_error="model crashed"), Reply.text("cut", omit_done=True))
    with pytest.raises(LLMStreamError, match="model crashed"):
        await llm.chat(USER)
    with pytest.raises(LLMStreamError, match="without a finish_reason"):
        await llm.chat(USER)


async def test_unreachable_server_is_unavailable() -> None:
    async with OpenAIAdapter(f"{dead_url()}/v1", MODEL) as llm:
        with pytest.raises(LLMUnavailable, match="connection refused"):
            await llm.chat(USER)


async def test_hung_server_times_out(fake: ScriptedOpenAI) -> None:
    fake.queue(Reply.text("late", delay=60))
    async with OpenAIAdapter(fake.base_url, MODEL, api_key=KEY, timeout_seconds=0.5) as llm:
        with pytest.raises(LLMUnavailable, match="did not"):
            await llm.chat(USER)


async def test_capabilities_list_models(fake: ScriptedOpenAI, llm: OpenAIAdapter) -> None:
    caps = await llm.capabilities()
    assert caps.model_found is True
    assert caps.native_tools is True
    async with OpenAIAdapter(fake.base_url, "other", api_key=KEY, tool_calls="emulated") as other:
        caps = await other.capabilities()
    assert caps.model_found is False
    assert MODEL in caps.detail
    assert caps.native_tools is False
    async with OpenAIAdapter(f"{dead_url()}/v1", MODEL) as dead:
        assert (await dead.capabilities()).reachable is False


async def test_server_without_json_schema_gets_the_schema_in_json_object(fake: ScriptedOpenAI) -> None:
    # What llama-cpp-python's server answers to response_format json_schema (seen with 0.3.x).
    refusal = (
        "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
        "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
    )
    fake.queue(
        Reply(error_status=500, error_message=refusal), Reply.json({"tasks": []}), Reply.json({"tasks": []})
    )
    schema = breakdown_json_schema()
    async with OpenAIAdapter(fake.base_url, MODEL, api_key=KEY, max_retries=0) as llm:
        assert json.loads((await llm.chat(USER, format=schema)).content) == {"tasks": []}
        await llm.chat(USER, format=schema)  # remembered: no refused request this time
    formats = [r["response_format"]["type"] for r in fake.requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert "acceptance_criteria" in json.dumps(fake.requests[1]["response_format"]["schema"])
