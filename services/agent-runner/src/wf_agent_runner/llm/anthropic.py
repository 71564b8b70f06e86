"""Adapter for Anthropic's Messages API (`POST <base_url>/v1/messages`, streamed as SSE events:
message_start, content_block_start/delta/stop, message_delta, message_stop, ping, error).

System messages go to the top-level `system`; tool calls are `tool_use` blocks and their results
`tool_result` blocks in the next user turn. Structured output is tool-forced: the schema becomes the
input schema of a tool `answer` the model must call, and its input is returned as the content.
"""

from __future__ import annotations

import asyncio
import json
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

API_VERSION = "2023-06-01"
ANSWER_TOOL = "answer"
JSON_ONLY = "Answer with one JSON object only: no prose, no markdown fences."


class AnthropicAdapter(LLMAdapter):
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        max_tokens: int = 4096,
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
            "Anthropic API", self.base_url, model, api_key, "api_key: ${ANTHROPIC_API_KEY}"
        )
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        self._timeout = httpx.Timeout(timeout_seconds, connect=min(http.CONNECT_TIMEOUT, timeout_seconds))

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/v1/messages"

    def __repr__(self) -> str:
        return f"AnthropicAdapter(base_url={self.base_url!r}, model={self.model!r})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION, "accept": "text/event-stream"}
        if self._svc.api_key:
            headers["x-api-key"] = self._svc.api_key
        return headers

    def body(
        self, messages: list[Message], tools: list[dict[str, Any]] | None, format: dict[str, Any] | str | None
    ) -> dict[str, Any]:
        system, turns = to_anthropic_messages(messages)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": turns,
            "stream": True,
        }
        wire_tools = [_tool(t) for t in tools or []]
        if isinstance(format, dict):
            wire_tools.append(
                {
                    "name": ANSWER_TOOL,
                    "description": "Give your answer as this tool's input.",
                    "input_schema": wire_schema(format),
                }
            )
            body["tool_choice"] = {"type": "tool", "name": ANSWER_TOOL}
        elif format == "json":
            system = f"{system}\n\n{JSON_ONLY}".strip()
        if system:
            body["system"] = system
        if wire_tools:
            body["tools"] = wire_tools
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
        deadline = asyncio.timeout(self.timeout_seconds)
        try:
            async with deadline:
                return await _Stream(self, on_token, forced=isinstance(format, dict)).run(body)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise LLMUnavailable(
                f"the Anthropic API at {self.base_url} did not finish answering within "
                f"{self.timeout_seconds:g}s; raise timeout_seconds of this backend",
                url=self.messages_url,
            ) from exc

    async def capabilities(self) -> Capabilities:
        """GET /v1/models/<model>: does the key see this model? Claude models all call tools."""
        headers = {k: v for k, v in self._headers().items() if k != "accept"}
        url = f"{self.base_url}/v1/models/{self.model}"
        native = self.tool_calls != "emulated"
        try:
            resp = await self._client.get(url, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            return Capabilities(False, None, native, f"unreachable ({http.reason(exc)})")
        if resp.status_code == 404:
            return Capabilities(True, False, native, f"model {self.model} is not known to {self.base_url}")
        if resp.status_code >= 400:
            return Capabilities(True, None, native, http.http_error(self._svc, resp).message)
        tools = "native tool calls" if native else "emulated tool calls (config tool_calls: emulated)"
        return Capabilities(True, True, native, f"model {self.model} available; {tools}")


def _tool(schema: dict[str, Any]) -> dict[str, Any]:
    fn = schema.get("function", schema)
    return {
        "name": fn["name"],
        "description": fn.get("description", ""),
        "input_schema": wire_schema(fn.get("parameters") or {"type": "object", "properties": {}}),
    }


def to_anthropic_messages(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, alternating user/assistant turns of content blocks)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:  # the API wants turns to alternate
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for i, m in enumerate(messages):
        role, content = m.get("role"), str(m.get("content") or "")
        if role == "system":
            system.append(content)
        elif role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
            pending = []
            for j, tc in enumerate(m.get("tool_calls") or []):
                fn = tc.get("function") or {}
                call_id = str(tc.get("id") or f"toolu_{i}_{j}")
                name = str(fn.get("name") or "")
                pending.append((call_id, name))
                args = fn.get("arguments")
                if isinstance(args, str):
                    try:
                        args = json.loads(args or "{}")
                    except json.JSONDecodeError:
                        args = {"raw": args}
                blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": args or {}})
            add("assistant", blocks or [{"type": "text", "text": "(no text)"}])
        elif role == "tool":
            name = str(m.get("tool_name") or "")
            match = next((p for p in pending if p[1] == name), pending[0] if pending else None)
            if match is None:
                add("user", [{"type": "text", "text": f"Result of {name}:\n{content}"}])
                continue
            pending.remove(match)
            add("user", [{"type": "tool_result", "tool_use_id": match[0], "content": content}])
        else:
            add("user", [{"type": "text", "text": content}])
    return "\n\n".join(s for s in system if s), turns


class _Stream:
    def __init__(self, adapter: AnthropicAdapter, on_token: TokenCallback | None, *, forced: bool) -> None:
        self.a = adapter
        self.on_token = on_token
        self.forced = forced
        self.pieces: list[str] = []
        self.blocks: dict[int, dict[str, Any]] = {}
        self.model = adapter.model
        self.input_tokens = 0
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.stopped = False

    def _protocol(self, what: str) -> LLMError:
        return LLMProtocolError(
            f"unexpected answer from the Anthropic API at {self.a.messages_url}: {what}",
            url=self.a.messages_url,
        )

    async def run(self, body: dict[str, Any]) -> ChatResult:
        a = self.a
        started = time.monotonic()

        def request() -> httpx.Request:
            return a._client.build_request(
                "POST", a.messages_url, json=body, headers=a._headers(), timeout=a._timeout
            )

        resp = await http.send(
            a._client, request, a._svc, max_retries=a.max_retries, backoff_base=a.backoff_base
        )
        received = False
        try:
            if "text/event-stream" not in resp.headers.get("content-type", ""):
                raise self._protocol(
                    f"content-type {resp.headers.get('content-type')!r} instead of an event stream; "
                    "is base_url an Anthropic Messages API?"
                )
            async for event, data in http.sse_events(resp):
                received = True
                await self._event(event, http.json_object(data, self._protocol))
                if self.stopped:
                    break
        except httpx.TimeoutException as exc:
            raise LLMUnavailable(
                f"the Anthropic API at {a.base_url} went silent mid-answer ({http.reason(exc)})",
                url=a.messages_url,
            ) from exc
        except httpx.TransportError as exc:
            cls = LLMStreamError if received else LLMUnavailable
            raise cls(
                f"the connection to the Anthropic API at {a.messages_url} broke ({http.reason(exc)})",
                url=a.messages_url,
            ) from exc
        finally:
            await resp.aclose()
        if not self.stopped:
            raise LLMStreamError(
                f"the answer stream from {a.messages_url} ended without message_stop", url=a.messages_url
            )
        return self._result(started)

    async def _event(self, event: str, obj: dict[str, Any]) -> None:
        kind = obj.get("type") or event
        if kind == "error":
            err = obj.get("error") or {}
            etype = err.get("type", "error") if isinstance(err, dict) else "error"
            text = err.get("message", err) if isinstance(err, dict) else err
            raise LLMStreamError(
                f"the Anthropic API at {self.a.messages_url} reported {etype} mid-answer: "
                f"{self.a._svc.redact(str(text))}",
                url=self.a.messages_url,
                retryable=etype in ("overloaded_error", "rate_limit_error", "api_error"),
            )
        if kind == "message_start":
            msg = obj.get("message") or {}
            self.model = str(msg.get("model") or self.model)
            usage = msg.get("usage") or {}
            self.input_tokens = int(usage.get("input_tokens") or 0)
            self.input_tokens += int(usage.get("cache_read_input_tokens") or 0)
            self.input_tokens += int(usage.get("cache_creation_input_tokens") or 0)
            self.output_tokens = int(usage.get("output_tokens") or 0)
        elif kind == "content_block_start":
            block = obj.get("content_block")
            if not isinstance(block, dict):
                raise self._protocol(f"content_block_start without a content_block: {obj!r}")
            self.blocks[int(obj.get("index", len(self.blocks)))] = {**block, "json": ""}
            if block.get("type") == "text" and block.get("text"):
                await self._text(str(block["text"]))
        elif kind == "content_block_delta":
            block = self.blocks.get(int(obj.get("index", -1)))
            delta = obj.get("delta") or {}
            if block is None:
                raise self._protocol(f"content_block_delta for a block that was not started: {obj!r}")
            if delta.get("type") == "text_delta":
                await self._text(str(delta.get("text") or ""))
            elif delta.get("type") == "input_json_delta":
                block["json"] += str(delta.get("partial_json") or "")
        elif kind == "message_delta":
            delta = obj.get("delta") or {}
            if delta.get("stop_reason"):
                self.stop_reason = str(delta["stop_reason"])
            usage = obj.get("usage") or {}
            if "output_tokens" in usage:
                self.output_tokens = int(usage["output_tokens"] or 0)
        elif kind == "message_stop":
            self.stopped = True
        # ping, content_block_stop, thinking deltas: nothing to keep

    async def _text(self, piece: str) -> None:
        if piece:
            self.pieces.append(piece)
            await emit(self.on_token, piece)

    def _result(self, started: float) -> ChatResult:
        calls: list[ToolCall] = []
        content = "".join(self.pieces)
        for i in sorted(self.blocks):
            b = self.blocks[i]
            if b.get("type") != "tool_use":
                continue
            name = str(b.get("name") or "")
            args = (
                http.parse_arguments(b["json"], name, self._protocol) if b["json"] else b.get("input") or {}
            )
            if self.forced and name == ANSWER_TOOL:
                content = json.dumps(args, ensure_ascii=False)  # the structured answer
                continue
            calls.append(ToolCall(name=name, arguments=args, id=str(b.get("id") or "")))
        return ChatResult(
            content=content,
            tool_calls=calls,
            usage=Usage(
                prompt_tokens=self.input_tokens,
                completion_tokens=self.output_tokens,
                duration_ms=(time.monotonic() - started) * 1000,
            ),
            model=self.model,
            done_reason=self.stop_reason or "end_turn",
        )
