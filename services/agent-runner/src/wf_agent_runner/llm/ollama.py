"""Adapter for Ollama's HTTP API (`POST /api/chat`, streamed NDJSON).

Reference: https://github.com/ollama/ollama/blob/main/docs/api.md
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
from wf_agent_runner.llm.errors import (
    LLMError,
    LLMModelNotFound,
    LLMProtocolError,
    LLMStreamError,
    LLMUnavailable,
)
from wf_agent_runner.llm.schema import wire_schema

# Connecting to a local server is instant when it is up; don't wait the whole generation budget.
_CONNECT_TIMEOUT = 10.0


class OllamaAdapter(LLMAdapter):
    def __init__(
        self,
        host: str,
        model: str,
        *,
        num_ctx: int = 8192,
        timeout_seconds: float = 300,
        options: dict[str, Any] | None = None,
        tool_calls: str = "auto",
        max_retries: int = 3,
        backoff_base: float = 1.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.tool_calls = tool_calls
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.host = host.rstrip("/")
        self.model = model
        self.num_ctx = num_ctx
        self.timeout_seconds = timeout_seconds
        self.options = dict(options or {})
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        self._svc = http.Service(
            "Ollama server",
            self.host,
            model,
            None,
            "",
            start_hint="start it with `ollama serve`, or set llm_backend.host in config.yaml",
        )
        # Read timeout = longest silence between chunks; the whole call is also capped (see chat).
        self._timeout = httpx.Timeout(timeout_seconds, connect=min(_CONNECT_TIMEOUT, timeout_seconds))

    @property
    def chat_url(self) -> str:
        return f"{self.host}/api/chat"

    def __repr__(self) -> str:
        return f"OllamaAdapter(host={self.host!r}, model={self.model!r})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def capabilities(self) -> Capabilities:
        """POST /api/show: is the model pulled, and does its template support tools?"""
        url = f"{self.host}/api/show"
        try:
            resp = await self._client.post(url, json={"model": self.model}, timeout=self._timeout)
        except httpx.HTTPError as exc:
            return Capabilities(False, None, self.tool_calls == "native", f"unreachable ({http.reason(exc)})")
        if resp.status_code == 404:
            return Capabilities(
                True,
                False,
                self.tool_calls != "emulated",
                f"model {self.model} is not pulled; run `ollama pull {self.model}`",
            )
        if resp.status_code >= 400:
            err = _http_error(self, resp)
            return Capabilities(True, None, self.tool_calls == "native", err.message)
        try:
            caps = resp.json().get("capabilities")
        except (ValueError, AttributeError):
            caps = None
        if not isinstance(caps, list):  # Ollama before 0.6 does not list capabilities: try native
            native, why = self.tool_calls != "emulated", "capabilities not listed by this Ollama"
        else:
            native = "tools" in caps and self.tool_calls != "emulated"
            why = f"capabilities: {', '.join(map(str, caps))}"
        if self.tool_calls == "native":
            native = True
        mode = "native tool calls" if native else "NO native tool support: using emulated tool calls"
        return Capabilities(True, True, native, f"model {self.model} ({why}); {mode}")

    def _body(
        self, messages: list[Message], tools: list[dict[str, Any]] | None, format: dict[str, Any] | str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "options": {"num_ctx": self.num_ctx, **self.options},
        }
        if tools:
            body["tools"] = tools
        if format is not None:  # Ollama builds a llama.cpp grammar from it: no huge bounds
            body["format"] = wire_schema(format) if isinstance(format, dict) else format
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
        deadline = asyncio.timeout(self.timeout_seconds)
        try:
            async with deadline:
                return await _Stream(self, on_token).run(self._body(messages, tools, format))
        except TimeoutError as exc:
            if not deadline.expired():  # a TimeoutError of the caller's on_token, not ours
                raise
            raise LLMUnavailable(
                f"the Ollama server at {self.host} did not finish answering within "
                f"{self.timeout_seconds:g}s. The model may be too big for this machine or still loading; "
                "use a smaller model or raise llm_backend.timeout_seconds in config.yaml",
                url=self.chat_url,
            ) from exc


class _Stream:
    """State of one streamed /api/chat call."""

    def __init__(self, adapter: OllamaAdapter, on_token: TokenCallback | None) -> None:
        self.a = adapter
        self.on_token = on_token
        self.pieces: list[str] = []
        self.tool_calls: list[ToolCall] = []
        self.received_any = False

    async def run(self, body: dict[str, Any]) -> ChatResult:
        a = self.a
        started = time.monotonic()

        def request() -> httpx.Request:
            return a._client.build_request("POST", a.chat_url, json=body, timeout=a._timeout)

        # The shared sender: 429 and 503 ("server busy": Ollama's request queue is full) are retried
        # after Retry-After or with backoff; unreachable and timeout become LLMUnavailable.
        resp = await http.send(
            a._client,
            request,
            a._svc,
            max_retries=a.max_retries,
            backoff_base=a.backoff_base,
            error=lambda r: _http_error(a, r),
        )
        try:
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                self.received_any = True
                final = await self._chunk(_parse_line(a, line))
                if final is not None:
                    return self._result(final, started)
        except httpx.TimeoutException as exc:
            raise LLMUnavailable(
                f"the Ollama server at {a.host} did not respond within {a.timeout_seconds:g}s "
                f"({http.reason(exc)}). The model may still be loading or the machine is overloaded; "
                "raise llm_backend.timeout_seconds in config.yaml or use a smaller model",
                url=a.chat_url,
            ) from exc
        except httpx.TransportError as exc:
            if self.received_any:
                raise LLMStreamError(
                    f"the connection to the Ollama server at {a.chat_url} broke mid-answer "
                    f"({http.reason(exc)})",
                    url=a.chat_url,
                ) from exc
            raise LLMUnavailable(
                f"could not reach the Ollama server at {a.host} ({http.reason(exc)}). "
                "Start it with `ollama serve`, or set llm_backend.host in config.yaml",
                url=a.chat_url,
            ) from exc
        finally:
            await resp.aclose()
        raise LLMStreamError(
            f"the answer stream from {a.chat_url} ended without a final `done: true` chunk",
            url=a.chat_url,
        )

    async def _chunk(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Consume one chunk; return it if it is the final one."""
        if "error" in obj:
            raise LLMStreamError(
                f"the Ollama server at {self.a.chat_url} reported an error mid-answer: {obj['error']}",
                url=self.a.chat_url,
            )
        message = obj.get("message")
        if message is not None:
            if not isinstance(message, dict):
                raise self._protocol(f"`message` is not an object: {message!r}")
            content = message.get("content") or ""
            if not isinstance(content, str):
                raise self._protocol(f"`message.content` is not a string: {content!r}")
            if content:
                self.pieces.append(content)
                await emit(self.on_token, content)
            # Ollama sends a call once, complete, in whichever chunk its parser finished it.
            for raw in message.get("tool_calls") or []:
                self.tool_calls.append(self._tool_call(raw))
        return obj if obj.get("done") is True else None

    def _tool_call(self, raw: Any) -> ToolCall:
        fn = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise self._protocol(f"tool call without a function name: {raw!r}")
        args = fn.get("arguments")
        if isinstance(args, str):  # some models/templates produce the arguments as JSON text
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as exc:
                raise self._protocol(f"tool call {fn['name']!r} arguments are not JSON: {args!r}") from exc
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise self._protocol(f"tool call {fn['name']!r} arguments are not an object: {args!r}")
        return ToolCall(name=fn["name"], arguments=args)

    def _result(self, final: dict[str, Any], started: float) -> ChatResult:
        total_ns = final.get("total_duration")
        duration_ms = (
            total_ns / 1e6 if isinstance(total_ns, int | float) else (time.monotonic() - started) * 1000
        )
        return ChatResult(
            content="".join(self.pieces),
            tool_calls=self.tool_calls,
            usage=Usage(
                prompt_tokens=int(final.get("prompt_eval_count") or 0),
                completion_tokens=int(final.get("eval_count") or 0),
                duration_ms=duration_ms,
            ),
            model=str(final.get("model") or self.a.model),
            done_reason=final.get("done_reason"),
        )

    def _protocol(self, what: str) -> LLMProtocolError:
        return LLMProtocolError(
            f"unexpected answer from the Ollama server at {self.a.chat_url}: {what}", url=self.a.chat_url
        )


def _parse_line(a: OllamaAdapter, line: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LLMProtocolError(
            f"the server at {a.chat_url} sent a line that is not JSON: {line[:200]!r}. "
            "Is llm_backend.host really an Ollama server?",
            url=a.chat_url,
        ) from exc
    if not isinstance(obj, dict):
        raise LLMProtocolError(
            f"the server at {a.chat_url} sent a JSON line that is not an object: {line[:200]!r}",
            url=a.chat_url,
        )
    return obj


def _http_error(a: OllamaAdapter, resp: httpx.Response) -> LLMError:
    try:
        detail = str(resp.json().get("error") or resp.text)
    except (ValueError, AttributeError):
        detail = resp.text.strip()[:500] or resp.reason_phrase
    if resp.status_code == 404:
        return LLMModelNotFound(
            f"model {a.model!r} is not available on the Ollama server at {a.host} ({detail}). "
            f"Download it with `ollama pull {a.model}`, or change the model in config.yaml (llm_backend)",
            model=a.model,
            url=a.chat_url,
        )
    if resp.status_code in http.RETRY_STATUSES:
        # 503 is Ollama's "server busy" (request queue full); 429 likewise means "later".
        return LLMError(
            f"the Ollama server at {a.chat_url} stayed busy (HTTP {resp.status_code}: {detail}) after "
            f"{a.max_retries} retries; raise OLLAMA_MAX_QUEUE on the server or llm_backend.max_retries",
            url=a.chat_url,
            retryable=True,
        )
    return LLMError(
        f"the Ollama server at {a.chat_url} answered HTTP {resp.status_code}: {detail}",
        url=a.chat_url,
        retryable=False,
    )
