"""Adapter for OpenAI-compatible servers (`POST <base_url>/chat/completions`, streamed as SSE):
OpenAI, Groq, llama.cpp `llama-server`, llama-cpp-python, vLLM, LM Studio.

Messages arrive in the runner's (Ollama-shaped) history format and are translated here: assistant
tool calls get ids and JSON-text arguments, tool results get the `tool_call_id` of their call.
Structured output is `response_format: {"type": "json_schema", ...}` with a grammar-safe schema.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Collection
from typing import Any

import httpx

from wf_agent_runner.llm import http
from wf_agent_runner.llm.base import (
    Capabilities,
    ChatResult,
    LLMAdapter,
    Message,
    TokenCallback,
    ToolCall,
    Usage,
    emit,
)
from wf_agent_runner.llm.errors import LLMError, LLMProtocolError, LLMStreamError, LLMUnavailable
from wf_agent_runner.llm.schema import wire_schema

log = logging.getLogger(__name__)


class OpenAIAdapter(LLMAdapter):
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        max_tokens: int | None = None,
        timeout_seconds: float = 300,
        max_retries: int = 3,
        backoff_base: float = 1.0,
        tool_calls: str = "auto",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_tokens = max_tokens
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.tool_calls = tool_calls
        self._svc = http.Service(
            "OpenAI-compatible server", self.base_url, model, api_key, "api_key: ${OPENAI_API_KEY}"
        )
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        self._timeout = httpx.Timeout(timeout_seconds, connect=min(http.CONNECT_TIMEOUT, timeout_seconds))

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def __repr__(self) -> str:
        return f"OpenAIAdapter(base_url={self.base_url!r}, model={self.model!r})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream"}
        if self._svc.api_key:
            headers["authorization"] = f"Bearer {self._svc.api_key}"
        return headers

    def body(
        self, messages: list[Message], tools: list[dict[str, Any]] | None, format: dict[str, Any] | str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.max_tokens:
            body["max_tokens"] = self.max_tokens
        if tools:
            body["tools"] = [_tool(t) for t in tools]
        if isinstance(format, dict):
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": wire_schema(format), "strict": False},
            }
        elif format == "json":
            body["response_format"] = {"type": "json_object"}
        return body

    async def chat(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        format: dict[str, Any] | str | None = None,
        on_token: TokenCallback | None = None,
        accepted: Collection[str] | None = None,
    ) -> ChatResult:
        body = self.body(messages, tools, format)
        if self.base_url in _SCHEMA_IN_JSON_OBJECT and isinstance(format, dict):
            body["response_format"] = _json_object(format)
        deadline = asyncio.timeout(self.timeout_seconds)
        try:
            async with deadline:
                try:
                    return await _Stream(self, on_token).run(body)
                except LLMError as err:
                    # llama-cpp-python's server knows only {"type": "json_object", "schema": ...}.
                    if not isinstance(format, dict) or "json_schema" not in err.message:
                        raise
                    _SCHEMA_IN_JSON_OBJECT.add(self.base_url)
                    body["response_format"] = _json_object(format)
                    return await _Stream(self, on_token).run(body)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise LLMUnavailable(
                f"the OpenAI-compatible server at {self.base_url} did not finish answering within "
                f"{self.timeout_seconds:g}s; use a smaller model or raise timeout_seconds of this backend",
                url=self.chat_url,
            ) from exc

    async def capabilities(self) -> Capabilities:
        """GET /models: is the model listed? (Tool support is not listed by these servers; it is
        assumed, and a call printed as text is still repaired and executed.)"""
        headers = {k: v for k, v in self._headers().items() if k != "accept"}
        try:
            resp = await self._client.get(f"{self.base_url}/models", headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            return Capabilities(
                False, None, self.tool_calls != "emulated", f"unreachable ({http.reason(exc)})"
            )
        if resp.status_code >= 400:
            err = http.http_error(self._svc, resp)
            return Capabilities(True, None, self.tool_calls != "emulated", err.message)
        try:
            ids = [str(m.get("id")) for m in resp.json().get("data") or [] if isinstance(m, dict)]
        except (ValueError, AttributeError):
            ids = []
        found = self.model in ids if ids else None
        native = self.tool_calls != "emulated"
        listed = f"; the server lists: {', '.join(ids[:10])}" if ids and not found else ""
        where = "listed" if found else "not listed" if found is False else "(the server lists no models)"
        tools = "native tool calls" if native else "emulated tool calls (config tool_calls: emulated)"
        return Capabilities(True, found, native, f"model {self.model} {where}{listed}; {tools}")


CHARS_PER_TOKEN = 4  # for the estimate when a server reports no usage
_ESTIMATING: dict[str, bool] = {}  # servers already warned about

# Servers that refused `json_schema` and take the schema inside `json_object` instead.
_SCHEMA_IN_JSON_OBJECT: set[str] = set()


def _json_object(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_object", "schema": wire_schema(schema)}


def _tool(schema: dict[str, Any]) -> dict[str, Any]:
    fn = schema.get("function", schema)
    return {"type": "function", "function": {**fn, "parameters": wire_schema(fn.get("parameters") or {})}}


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The runner's history in OpenAI's chat format (ids paired between calls and their results)."""
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (id, name) of calls awaiting their result
    for i, m in enumerate(messages):
        role = m.get("role")
        if role == "assistant" and m.get("tool_calls"):
            calls = []
            pending = []
            for j, tc in enumerate(m["tool_calls"]):
                fn = tc.get("function") or {}
                call_id = str(tc.get("id") or f"call_{i}_{j}")
                pending.append((call_id, str(fn.get("name") or "")))
                args = fn.get("arguments")
                calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": fn.get("name"),
                            "arguments": args if isinstance(args, str) else json.dumps(args or {}),
                        },
                    }
                )
            out.append({"role": "assistant", "content": m.get("content") or None, "tool_calls": calls})
        elif role == "tool":
            name = str(m.get("tool_name") or "")
            match = next((p for p in pending if p[1] == name), pending[0] if pending else None)
            if match is None:  # a result without a call in the history: send it as plain text
                out.append({"role": "user", "content": f"Result of {name}:\n{m.get('content') or ''}"})
                continue
            pending.remove(match)
            out.append({"role": "tool", "tool_call_id": match[0], "content": str(m.get("content") or "")})
        else:
            out.append({"role": role, "content": str(m.get("content") or "")})
    return out


class _Stream:
    def __init__(self, adapter: OpenAIAdapter, on_token: TokenCallback | None) -> None:
        self.a = adapter
        self.on_token = on_token
        self.pieces: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] = {}
        self.model = adapter.model
        self.finish_reason: str | None = None
        self.done = False
        self.pieces_streamed = 0  # content and tool-call deltas: about one token each on llama.cpp
        self.prompt_chars = 0

    def _protocol(self, what: str) -> LLMError:
        return LLMProtocolError(
            f"unexpected answer from the OpenAI-compatible server at {self.a.chat_url}: {what}",
            url=self.a.chat_url,
        )

    async def run(self, body: dict[str, Any]) -> ChatResult:
        a = self.a
        started = time.monotonic()
        self.prompt_chars = len(json.dumps(body.get("messages"), ensure_ascii=False))

        def request() -> httpx.Request:
            return a._client.build_request(
                "POST", a.chat_url, json=body, headers=a._headers(), timeout=a._timeout
            )

        resp = await http.send(
            a._client, request, a._svc, max_retries=a.max_retries, backoff_base=a.backoff_base
        )
        received = False
        try:
            if "text/event-stream" not in resp.headers.get("content-type", ""):
                # A server that ignores `stream`: one JSON completion.
                await resp.aread()
                await self._whole(http.json_object(resp.text, self._protocol))
            else:
                async for _event, data in http.sse_events(resp):
                    received = True
                    if data.strip() == "[DONE]":
                        self.done = True
                        break
                    await self._chunk(http.json_object(data, self._protocol))
        except httpx.TimeoutException as exc:
            raise LLMUnavailable(
                f"the OpenAI-compatible server at {a.base_url} went silent mid-answer ({http.reason(exc)})",
                url=a.chat_url,
            ) from exc
        except httpx.TransportError as exc:
            cls = LLMStreamError if received else LLMUnavailable
            raise cls(
                f"the connection to the OpenAI-compatible server at {a.chat_url} broke ({http.reason(exc)})",
                url=a.chat_url,
            ) from exc
        finally:
            await resp.aclose()
        if not self.done and self.finish_reason is None:
            raise LLMStreamError(
                f"the answer stream from {a.chat_url} ended without a finish_reason or [DONE]",
                url=a.chat_url,
            )
        return self._result(started)

    async def _chunk(self, obj: dict[str, Any]) -> None:
        if "error" in obj:
            err = obj["error"]
            text = err.get("message") if isinstance(err, dict) else err
            raise LLMStreamError(
                f"the OpenAI-compatible server at {self.a.chat_url} reported an error mid-answer: "
                f"{self.a._svc.redact(str(text))}",
                url=self.a.chat_url,
            )
        self.model = str(obj.get("model") or self.model)
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise self._protocol(f"`delta` is not an object: {delta!r}")
            content = delta.get("content")
            if delta.get("tool_calls") or (isinstance(content, str) and content):
                self.pieces_streamed += 1
            if isinstance(content, str) and content:
                self.pieces.append(content)
                await emit(self.on_token, content)
            for tc in delta.get("tool_calls") or []:
                self._tool_delta(tc)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])

    def _tool_delta(self, tc: Any) -> None:
        """Calls arrive in pieces: the first delta of an index has id and name, later ones append
        to `arguments` (JSON text)."""
        if not isinstance(tc, dict):
            raise self._protocol(f"tool call delta is not an object: {tc!r}")
        index = tc.get("index", len(self.calls))
        call = self.calls.setdefault(int(index), {"id": "", "name": "", "arguments": ""})
        if tc.get("id"):
            call["id"] = str(tc["id"])
        fn = tc.get("function") or {}
        if fn.get("name"):
            call["name"] += str(fn["name"])
        args = fn.get("arguments")
        if isinstance(args, str):
            call["arguments"] += args
        elif isinstance(args, dict):  # some servers send the object itself
            call["arguments"] = json.dumps(args)

    def _usage(self, duration_ms: float) -> Usage:
        """The server's count; a server that streams none (llama-cpp-python ignores
        `stream_options`) gets an estimate instead of zeros: one token per streamed piece (llama.cpp
        streams a token per chunk) and CHARS_PER_TOKEN characters per prompt token."""
        if self.usage.get("prompt_tokens") or self.usage.get("completion_tokens"):
            return Usage(
                prompt_tokens=int(self.usage.get("prompt_tokens") or 0),
                completion_tokens=int(self.usage.get("completion_tokens") or 0),
                duration_ms=duration_ms,
            )
        if not _ESTIMATING.get(self.a.base_url):
            _ESTIMATING[self.a.base_url] = True
            log.warning("%s reports no token usage; the ledger gets estimates for it", self.a.chat_url)
        return Usage(
            prompt_tokens=max(1, self.prompt_chars // CHARS_PER_TOKEN),
            completion_tokens=self.pieces_streamed,
            duration_ms=duration_ms,
        )

    async def _whole(self, obj: dict[str, Any]) -> None:
        if "error" in obj:
            await self._chunk(obj)
        self.model = str(obj.get("model") or self.model)
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        choices = obj.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            raise self._protocol("a completion without choices")
        msg = choices[0].get("message") or {}
        content = msg.get("content") or ""
        if content:
            self.pieces.append(content)
            await emit(self.on_token, content)
        for i, tc in enumerate(msg.get("tool_calls") or []):
            self._tool_delta({**tc, "index": i})
        self.finish_reason = str(choices[0].get("finish_reason") or "stop")

    def _result(self, started: float) -> ChatResult:
        calls = []
        for i in sorted(self.calls):
            c = self.calls[i]
            if not c["name"]:
                raise self._protocol(f"tool call {i} without a function name")
            args = http.parse_arguments(c["arguments"], c["name"], self._protocol)
            calls.append(ToolCall(name=c["name"], arguments=args, id=c["id"]))
        return ChatResult(
            content="".join(self.pieces),
            tool_calls=calls,
            usage=self._usage((time.monotonic() - started) * 1000),
            model=self.model,
            done_reason=self.finish_reason or "stop",
        )
