"""The Ollama adapter, FallbackAdapter and build_adapter against ScriptedOllama over real sockets."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from wf_agent_runner.llm import (
    FallbackAdapter,
    LLMError,
    LLMModelNotFound,
    LLMProtocolError,
    LLMStreamError,
    LLMUnavailable,
    OllamaAdapter,
    ToolCall,
    build_adapter,
)
from wf_agent_runner.llm.toolcalls import ToolCallAdapter
from wf_common.config import LLMBackendConfig

from tests.fakes.ollama import Reply, ScriptedOllama

MODEL = "qwen2.5-coder:0.5b"
OTHER = "llama3.2:3b"
USER = [{"role": "user", "content": "hi"}]
WRITE_FILE = {
    "type": "function",
    "function": {
        "name": "write_file",
        "description": "Write a file",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
}


def dead_url() -> str:
    """A port nobody listens on: bound once, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def fake() -> Iterator[ScriptedOllama]:
    with ScriptedOllama(models=(MODEL, OTHER)) as server:
        yield server


@pytest.fixture
async def llm(fake: ScriptedOllama) -> AsyncIterator[OllamaAdapter]:
    adapter = OllamaAdapter(fake.url, MODEL, num_ctx=4096, timeout_seconds=10)
    yield adapter
    await adapter.aclose()


# -- OllamaAdapter ---------------------------------------------------------------------------------


async def test_streams_text_and_reports_each_piece(fake: ScriptedOllama, llm: OllamaAdapter) -> None:
    fake.queue(Reply.text("Hello there, brave world!", chunk_size=2))
    pieces: list[str] = []

    result = await llm.chat(USER, on_token=pieces.append)

    assert pieces == ["Hello there, ", "brave world!"]
    assert result.content == "Hello there, brave world!"
    assert result.tool_calls == []
    assert result.model == MODEL
    assert result.done_reason == "stop"
    assert result.usage.prompt_tokens >= 1
    assert result.usage.completion_tokens == 4
    assert result.usage.duration_ms > 0


async def test_async_token_callback_is_awaited(fake: ScriptedOllama, llm: OllamaAdapter) -> None:
    fake.queue(Reply.text("one two three"))
    seen: list[str] = []

    async def on_token(piece: str) -> None:
        seen.append(piece)

    await llm.chat(USER, on_token=on_token)
    assert seen == ["one ", "two ", "three"]


async def test_request_body_carries_model_messages_options(fake: ScriptedOllama) -> None:
    fake.queue(Reply.text("ok"))
    async with OllamaAdapter(fake.url, MODEL, num_ctx=16384, options={"temperature": 0.1}) as llm:
        await llm.chat(USER)

    [body] = fake.requests
    assert body["model"] == MODEL
    assert body["messages"] == USER
    assert body["stream"] is True
    assert body["options"] == {"num_ctx": 16384, "temperature": 0.1}
    assert "tools" not in body
    assert "format" not in body


async def test_tool_calls_with_object_and_string_arguments(fake: ScriptedOllama, llm: OllamaAdapter) -> None:
    fake.queue(
        Reply(
            content="Writing it.",
            tool_calls=[("write_file", {"path": "a.py", "content": "x = 1\n"}), ("run", '{"cmd": "pytest"}')],
        )
    )

    result = await llm.chat(USER, tools=[WRITE_FILE])

    assert result.tool_calls == [
        ToolCall("write_file", {"path": "a.py", "content": "x = 1\n"}),
        ToolCall("run", {"cmd": "pytest"}),
    ]
    assert result.content == "Writing it."
    assert fake.requests[0]["tools"] == [WRITE_FILE]
    # The assistant turn can be echoed back in Ollama's shape before sending tool results.
    assert result.as_message()["tool_calls"][1] == {
        "function": {"name": "run", "arguments": {"cmd": "pytest"}}
    }


async def test_structured_output_sends_schema(fake: ScriptedOllama, llm: OllamaAdapter) -> None:
    schema = {
        "type": "object",
        "properties": {"verdict": {"enum": ["pass", "fail"]}},
        "required": ["verdict"],
    }
    fake.queue(Reply.json({"verdict": "pass"}), Reply.json([1, 2]))

    result = await llm.chat(USER, format=schema)
    second = await llm.chat(USER, format="json")

    assert json.loads(result.content) == {"verdict": "pass"}
    assert json.loads(second.content) == [1, 2]
    assert [r["format"] for r in fake.requests] == [schema, "json"]


async def test_structured_output_drops_bounds_a_grammar_cannot_take(
    fake: ScriptedOllama, llm: OllamaAdapter
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "maxLength": 20000},
            "code": {"type": "string", "maxLength": 8},
        },
    }
    fake.queue(Reply.json({"text": "x", "code": "y"}))
    await llm.chat(USER, format=schema)
    assert fake.requests[0]["format"]["properties"] == {
        "text": {"type": "string"},
        "code": {"type": "string", "maxLength": 8},
    }


async def test_complete_and_stream_build_on_chat(fake: ScriptedOllama, llm: OllamaAdapter) -> None:
    fake.queue(Reply.text("forty two"), Reply.text("a b c"))

    assert await llm.complete("answer?", system="be brief") == "forty two"
    assert [p async for p in llm.stream("letters")] == ["a ", "b ", "c"]

    assert fake.requests[0]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "answer?"},
    ]
    assert fake.requests[1]["messages"] == [{"role": "user", "content": "letters"}]


async def test_stream_raises_adapter_errors(fake: ScriptedOllama, llm: OllamaAdapter) -> None:
    fake.queue(Reply.text("partial answer", mid_stream_error="out of memory"))
    got: list[str] = []

    async def consume() -> None:
        async for piece in llm.stream("x"):
            got.append(piece)

    with pytest.raises(LLMStreamError):
        await consume()
    assert got == ["partial ", "answer"]


async def test_mid_stream_error(fake: ScriptedOllama, llm: OllamaAdapter) -> None:
    fake.queue(Reply.text("so far so", mid_stream_error="llama runner process has terminated"))
    pieces: list[str] = []

    with pytest.raises(LLMStreamError) as err:
        await llm.chat(USER, on_token=pieces.append)

    assert "llama runner process has terminated" in str(err.value)
    assert err.value.retryable is True
    assert pieces == ["so ", "far ", "so"]


async def test_stream_without_done_is_an_error(fake: ScriptedOllama, llm: OllamaAdapter) -> None:
    fake.queue(Reply.text("cut off", omit_done=True))
    with pytest.raises(LLMStreamError, match="done"):
        await llm.chat(USER)


async def test_unknown_model_says_ollama_pull(fake: ScriptedOllama) -> None:
    async with OllamaAdapter(fake.url, "mistral:7b") as llm:
        with pytest.raises(LLMModelNotFound) as err:
            await llm.chat(USER)

    assert "ollama pull mistral:7b" in str(err.value)
    assert 'model "mistral:7b" not found' in str(err.value)  # Ollama's own words are kept
    assert err.value.model == "mistral:7b"
    assert err.value.retryable is False


async def test_http_error_carries_ollama_text_and_url(fake: ScriptedOllama, llm: OllamaAdapter) -> None:
    fake.queue(Reply(error_status=400, error_message="qwen2.5-coder:0.5b does not support tools"))
    with pytest.raises(LLMError) as err:
        await llm.chat(USER, tools=[WRITE_FILE])

    assert type(err.value) is LLMError
    assert "does not support tools" in str(err.value)
    assert f"{fake.url}/api/chat" in str(err.value)
    assert "400" in str(err.value)
    assert err.value.retryable is False


async def test_server_busy_that_persists_is_a_retryable_error(fake: ScriptedOllama) -> None:
    fake.queue(*[Reply(error_status=503, error_message="server busy, please try again")] * 3)
    async with OllamaAdapter(fake.url, MODEL, max_retries=2, backoff_base=0.01) as llm:
        with pytest.raises(LLMError) as err:
            await llm.chat(USER)
    assert err.value.retryable is True
    assert "server busy" in str(err.value)
    assert "after 2 retries" in str(err.value)
    assert len(fake.requests) == 3  # the first try and two retries, then it gives up


@pytest.mark.parametrize("status", [429, 503])
async def test_rate_limit_and_busy_are_retried_after_retry_after(
    fake: ScriptedOllama, llm: OllamaAdapter, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    fake.queue(Reply(error_status=status, error_message="server busy", retry_after="0"), Reply.text("done"))
    caplog.set_level(logging.WARNING)

    result = await llm.chat(USER)

    assert result.content == "done"
    assert len(fake.requests) == 2
    assert f"answered {status}; retry 1/3 in 0.0s" in caplog.text


async def test_busy_without_retry_after_backs_off_and_succeeds(
    fake: ScriptedOllama, caplog: pytest.LogCaptureFixture
) -> None:
    fake.queue(Reply(error_status=503, error_message="server busy"), Reply.text("later"))
    caplog.set_level(logging.WARNING)
    async with OllamaAdapter(fake.url, MODEL, backoff_base=0.05) as llm:
        result = await llm.chat(USER)
    assert result.content == "later"
    assert "answered 503; retry 1/3 in 0.1s" in caplog.text  # the backoff, not a Retry-After


async def test_client_errors_are_not_retried(fake: ScriptedOllama, llm: OllamaAdapter) -> None:
    fake.queue(Reply(error_status=400, error_message="invalid options"), Reply.text("unused"))
    with pytest.raises(LLMError, match="invalid options"):
        await llm.chat(USER)
    assert len(fake.requests) == 1
    assert fake.pending == 1


def test_build_adapter_passes_max_retries_to_ollama() -> None:
    entry = LLMBackendConfig(adapter="ollama", host="http://127.0.0.1:1", model=MODEL, max_retries=5)
    adapter = build_adapter(entry, "dev")
    assert isinstance(adapter, ToolCallAdapter)
    assert isinstance(adapter.inner, OllamaAdapter)
    assert adapter.inner.max_retries == 5


async def test_unreachable_server_names_url_and_fix() -> None:
    url = dead_url()
    async with OllamaAdapter(url, MODEL) as llm:
        with pytest.raises(LLMUnavailable) as err:
            await llm.chat(USER)

    message = str(err.value)
    assert url in message
    assert "connection refused" in message
    assert "ollama serve" in message
    assert "llm_backend.host" in message
    assert err.value.retryable is True


async def test_hung_server_times_out_as_unavailable(fake: ScriptedOllama) -> None:
    fake.queue(Reply.text("too late", delay=30))
    async with OllamaAdapter(fake.url, MODEL, timeout_seconds=0.5) as llm:
        with pytest.raises(LLMUnavailable) as err:
            await llm.chat(USER)

    assert fake.url in str(err.value)  # raised long before the 30 s reply would have come
    assert "timeout_seconds" in str(err.value)


async def test_non_ndjson_answer_is_a_protocol_error() -> None:
    # A wrong host (some other web server) answers 200 with HTML.
    transport = httpx.MockTransport(lambda req: httpx.Response(200, text="<html>hello</html>\n"))
    async with httpx.AsyncClient(transport=transport) as client:
        llm = OllamaAdapter("http://elsewhere:8080", MODEL, client=client)
        with pytest.raises(LLMProtocolError, match="not JSON"):
            await llm.chat(USER)
        await llm.aclose()
        assert not client.is_closed  # a borrowed client stays open


async def test_malformed_tool_arguments_are_a_protocol_error() -> None:
    call = {"function": {"name": "run", "arguments": "{not json"}}
    line = {
        "model": MODEL,
        "message": {"role": "assistant", "content": "", "tool_calls": [call]},
        "done": False,
    }
    body = json.dumps(line) + "\n" + json.dumps({"model": MODEL, "done": True}) + "\n"
    transport = httpx.MockTransport(lambda req: httpx.Response(200, text=body))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(LLMProtocolError, match="run"):
            await OllamaAdapter("http://x:1", MODEL, client=client).chat(USER)


# -- FallbackAdapter -------------------------------------------------------------------------------


async def test_fallback_used_when_primary_unreachable(
    fake: ScriptedOllama, caplog: pytest.LogCaptureFixture
) -> None:
    fake.queue(Reply.text("from the fallback"), Reply.text("again"))
    llm = FallbackAdapter(OllamaAdapter(dead_url(), MODEL), OllamaAdapter(fake.url, OTHER))
    with caplog.at_level(logging.WARNING, logger="wf_agent_runner.llm.fallback"):
        async with llm:
            result = await llm.chat(USER)
            assert await llm.complete("x") == "again"

    assert result.content == "from the fallback"
    assert result.model == OTHER
    assert [r["model"] for r in fake.requests] == [OTHER, OTHER]
    assert "unavailable" in caplog.text


async def test_fallback_not_used_for_other_errors(fake: ScriptedOllama) -> None:
    with ScriptedOllama(models=(OTHER,)) as backup:
        backup.queue(Reply.text("should not be used"))
        async with FallbackAdapter(
            OllamaAdapter(fake.url, "missing:1b"), OllamaAdapter(backup.url, OTHER)
        ) as llm:
            with pytest.raises(LLMModelNotFound):
                await llm.chat(USER)
        assert backup.requests == []


# -- build_adapter ---------------------------------------------------------------------------------


def Settings(host: str, **kw: Any) -> LLMBackendConfig:
    return LLMBackendConfig(host=host, model=kw.pop("model", MODEL), num_ctx=kw.pop("num_ctx", 2048), **kw)


async def test_build_adapter_per_role_model(fake: ScriptedOllama) -> None:
    fake.queue(Reply.text("dev"), Reply.text("qa"))
    settings = Settings(host=fake.url, models={"dev": OTHER})

    async with build_adapter(settings, "dev") as dev, build_adapter(settings, "qa") as qa:
        await dev.chat(USER)
        await qa.chat(USER)

    assert [(r["model"], r["options"]["num_ctx"]) for r in fake.requests] == [(OTHER, 2048), (MODEL, 2048)]


async def test_build_adapter_with_fallback(fake: ScriptedOllama) -> None:
    fake.queue(Reply.text("backup answer"))
    settings = Settings(host=dead_url(), fallback=Settings(host=fake.url, models={"pm": OTHER}))

    async with build_adapter(settings, "pm") as llm:
        assert isinstance(llm, FallbackAdapter)
        assert await llm.complete("plan") == "backup answer"

    assert fake.requests[0]["model"] == OTHER


def test_config_rejects_unknown_adapter() -> None:
    with pytest.raises(ValidationError, match="'ollama'") as err:
        Settings(host="http://localhost:11434", adapter="olama")
    assert "openai" in str(err.value)


async def test_build_adapter_accepts_the_real_config(fake: ScriptedOllama) -> None:
    fake.queue(Reply.text("ok"))
    config = LLMBackendConfig(host=fake.url, model=OTHER, models={"sec": MODEL}, num_ctx=1024)
    async with build_adapter(config, "sec") as llm:
        await llm.chat(USER)
    assert fake.requests[0]["model"] == MODEL
    assert fake.requests[0]["options"]["num_ctx"] == 1024


# -- ScriptedOllama itself (other suites and e2e tests rely on its fidelity) -----------------------


def test_fake_serves_ollama_endpoints(fake: ScriptedOllama) -> None:
    with httpx.Client(base_url=fake.url) as http:
        assert http.get("/api/version").json()["version"]
        assert [m["name"] for m in http.get("/api/tags").json()["models"]] == [MODEL, OTHER]
        assert http.post("/api/show", json={"model": MODEL}).json()["capabilities"] == ["completion", "tools"]
        missing = http.post("/api/show", json={"model": "nope"})
        assert missing.status_code == 404
        assert "not found" in missing.json()["error"]


def test_fake_non_streaming_chat_and_generate(fake: ScriptedOllama) -> None:
    fake.queue(Reply.tool("write_file", path="a.py", content="x"), Reply.text("generated text"))
    with httpx.Client(base_url=fake.url) as http:
        chat = http.post("/api/chat", json={"model": MODEL, "messages": USER, "stream": False}).json()
        gen = http.post("/api/generate", json={"model": MODEL, "prompt": "go", "stream": False}).json()

    assert chat["done"] is True
    assert chat["done_reason"] == "stop"
    assert chat["message"]["tool_calls"][0]["function"] == {
        "index": 0,
        "name": "write_file",
        "arguments": {"path": "a.py", "content": "x"},
    }
    assert gen["response"] == "generated text"
    assert {"prompt_eval_count", "eval_count", "total_duration", "eval_duration", "created_at"} <= gen.keys()
    assert [r.get("prompt") for r in fake.requests] == [None, "go"]


def test_fake_streaming_generate_is_ndjson(fake: ScriptedOllama) -> None:
    fake.queue(Reply.text("x y"))
    with httpx.Client(base_url=fake.url) as http:
        resp = http.post("/api/generate", json={"model": MODEL, "prompt": "go"})
    lines = [json.loads(line) for line in resp.text.splitlines()]

    assert resp.headers["content-type"].startswith("application/x-ndjson")
    assert [line["response"] for line in lines] == ["x ", "y", ""]
    assert [line["done"] for line in lines] == [False, False, True]


def test_fake_without_reply_answers_500(fake: ScriptedOllama) -> None:
    with httpx.Client(base_url=fake.url) as http:
        resp = http.post("/api/chat", json={"model": MODEL, "messages": USER})
    assert resp.status_code == 500
    assert "no reply scripted" in resp.json()["error"]
    assert len(fake.requests) == 1


async def test_fake_responder_sees_requests(fake: ScriptedOllama, llm: OllamaAdapter) -> None:
    async def echo(body: dict[str, Any]) -> Reply:
        return Reply.text(f"you said {body['messages'][-1]['content']}")

    fake.set_responder(echo)
    assert await llm.complete("ping") == "you said ping"
    fake.set_responder(lambda body: "plain string")
    assert await llm.complete("x") == "plain string"


def test_fake_stop_ends_hung_requests() -> None:
    server = ScriptedOllama().start()
    server.queue(Reply.text("never", delay=60))
    result: list[int] = []
    with httpx.Client(base_url=server.url, timeout=30) as http:

        def call() -> None:
            result.append(http.post("/api/chat", json={"model": MODEL, "messages": USER}).status_code)

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.3)
        server.stop()
        t.join(10)
    assert result == [503]  # the hung request was answered by stop(), not left hanging
