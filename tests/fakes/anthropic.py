"""A scripted model server that speaks Anthropic's Messages API over a real TCP socket.

`POST /v1/messages` with `stream: true` answers an event stream as Anthropic does:
`message_start` (usage.input_tokens), a `ping`, per content block `content_block_start`,
`content_block_delta` (`text_delta` for text, `input_json_delta` with `partial_json` fragments for
tool_use) and `content_block_stop`, then `message_delta` (stop_reason, usage.output_tokens) and
`message_stop`. Errors are `{"type": "error", "error": {"type", "message"}}`: 400, 401, 404, 429 and
529 (overloaded) over HTTP with `retry-after`, or an `event: error` mid-stream. A forced tool
(`tool_choice: {"type": "tool", "name": ...}`) answers a scripted JSON reply as that tool's input.
`GET /v1/models/<id>` describes a model.

The responder gets a flattened view of the request, in the shape the Ollama fake's responders read:
{"model", "messages": [{"role": "system"|"user"|"assistant"|"tool", "content": str}, ...],
"tools", "tool_choice"} (tool_result blocks become role "tool"); `requests` keeps the raw bodies.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.ollama import Reply, Responder, ScriptedOllama, _words

__all__ = ["Reply", "ScriptedAnthropic", "chat_view"]

DEFAULT_MODELS = ("claude-sonnet-4-5",)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str, *, retry_after: str | None = None) -> JSONResponse:
    headers = {"retry-after": retry_after} if retry_after is not None and status in (429, 529) else None
    return JSONResponse(
        {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}},
        status_code=status,
        headers=headers,
    )


def chat_view(body: dict[str, Any]) -> dict[str, Any]:
    """The request as a list of plain chat messages (see the module docstring)."""
    msgs: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, list):
        system = "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    if system:
        msgs.append({"role": "system", "content": str(system)})
    for turn in body.get("messages") or []:
        content = turn.get("content")
        if isinstance(content, str):
            msgs.append({"role": turn.get("role"), "content": content})
            continue
        for block in content or []:
            kind = block.get("type")
            if kind == "text":
                msgs.append({"role": turn.get("role"), "content": block.get("text", "")})
            elif kind == "tool_use":
                call = {"function": {"name": block.get("name"), "arguments": block.get("input")}}
                msgs.append({"role": "assistant", "content": "", "tool_calls": [call]})
            elif kind == "tool_result":
                result = block.get("content")
                if isinstance(result, list):
                    result = "\n".join(str(b.get("text", "")) for b in result if isinstance(b, dict))
                msgs.append({"role": "tool", "content": str(result or "")})
    return {**body, "messages": msgs}


class ScriptedAnthropic(ScriptedOllama):
    def __init__(
        self,
        responder: Responder | None = None,
        models: Iterable[str] = DEFAULT_MODELS,
        *,
        api_key: str | None = None,
        retry_after: str = "0",
    ) -> None:
        self._raw_responder = responder
        super().__init__(self._flattening if responder else None, models)
        self.api_key = api_key
        self.retry_after = retry_after
        self.headers: list[dict[str, str]] = []
        self._app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/models/{model_id}", self._model, methods=["GET"]),
            ]
        )

    def __enter__(self) -> ScriptedAnthropic:
        self.start()
        return self

    @property
    def base_url(self) -> str:
        return self.url

    def set_responder(self, responder: Responder | None) -> None:
        self._raw_responder = responder
        super().set_responder(self._flattening if responder else None)

    def _flattening(self, body: dict[str, Any]) -> Any:
        assert self._raw_responder is not None
        return self._raw_responder(chat_view(body))

    def _authorized(self, request: Request) -> Response | None:
        if request.headers.get("anthropic-version") is None:
            return anthropic_error(400, "anthropic-version: header is required")
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return anthropic_error(401, "invalid x-api-key")
        return None

    async def _model(self, request: Request) -> Response:
        if denied := self._authorized(request):
            return denied
        model = request.path_params["model_id"]
        if model not in self.models:
            return anthropic_error(404, f"model: {model}")
        return JSONResponse(
            {"type": "model", "id": model, "display_name": model, "created_at": "2025-09-29T00:00:00Z"}
        )

    async def _messages(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return anthropic_error(400, "invalid JSON body")
        with self._lock:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
        if denied := self._authorized(request):
            return denied
        problem = self._check(body)
        if problem:
            return anthropic_error(400, problem)
        if body["model"] not in self.models:
            return anthropic_error(404, f"model: {body['model']}")
        reply = await self._next_reply(body, "chat")
        if isinstance(reply, Response):
            return anthropic_error(500, json.loads(bytes(reply.body)).get("error", "no reply"))
        if reply.delay > 0 and await self._sleep_or_stop(reply.delay):
            return anthropic_error(529, "ScriptedAnthropic is shutting down")
        if reply.error_status is not None:
            return anthropic_error(reply.error_status, reply.error_message, retry_after=self.retry_after)
        if body.get("stream") is not True:
            return anthropic_error(400, "ScriptedAnthropic only streams; send stream: true")
        return StreamingResponse(self._events(body, reply), media_type="text/event-stream")

    @staticmethod
    def _check(body: dict[str, Any]) -> str | None:
        """The request validation of the real API that our adapter could get wrong."""
        if not body.get("model"):
            return "model: Field required"
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        turns = body.get("messages")
        if not isinstance(turns, list) or not turns:
            return "messages: at least one message is required"
        if any(m.get("role") == "system" for m in turns):
            return 'messages: Unexpected role "system". Use the top-level `system` parameter'
        if turns[0].get("role") != "user":
            return 'messages: first message must use the "user" role'
        for a, b in itertools.pairwise(turns):
            if a.get("role") == b.get("role"):
                return 'messages: roles must alternate between "user" and "assistant"'
        used: set[str] = set()
        for m in turns:
            for block in m.get("content") if isinstance(m.get("content"), list) else []:
                if block.get("type") == "tool_use":
                    used.add(block.get("id"))
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in used:
                    return (
                        f"unexpected `tool_use_id` found in `tool_result` blocks: {block.get('tool_use_id')}"
                    )
        return None

    async def _events(self, body: dict[str, Any], reply: Reply) -> AsyncIterator[str]:
        def event(kind: str, obj: dict[str, Any]) -> str:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **obj})}\n\n"

        input_tokens = self._prompt_tokens(chat_view(body))
        output_tokens = max(1, len(_words(reply.content)) + len(reply.tool_calls))
        message = {
            "id": f"msg_{uuid.uuid4().hex[:16]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }
        yield event("message_start", {"message": message})
        yield event("ping", {})
        forced = (
            (body.get("tool_choice") or {}).get("name")
            if (body.get("tool_choice") or {}).get("type") == "tool"
            else None
        )
        calls: list[tuple[str, Any]] = list(reply.tool_calls)
        text = reply.content
        if forced and not calls:  # structured output: the JSON answer is the forced tool's input
            calls, text = [(forced, text)], ""
        index = 0
        if text:
            yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            words = _words(text)
            size = max(1, reply.chunk_size)
            for i in range(0, len(words), size):
                piece = "".join(words[i : i + size])
                yield event(
                    "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}}
                )
                await asyncio.sleep(0)
            if reply.mid_stream_error is not None:
                err = {"type": "overloaded_error", "message": reply.mid_stream_error}
                yield event("error", {"error": err})
                return
            yield event("content_block_stop", {"index": 0})
            index = 1
        for name, args in calls:
            raw = args if isinstance(args, str) else json.dumps(args)
            block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:16]}", "name": name, "input": {}}
            yield event("content_block_start", {"index": index, "content_block": block})
            step = max(1, len(raw) // 3)
            for j in range(0, len(raw), step):
                delta = {"type": "input_json_delta", "partial_json": raw[j : j + step]}
                yield event("content_block_delta", {"index": index, "delta": delta})
                await asyncio.sleep(0)
            yield event("content_block_stop", {"index": index})
            index += 1
        if reply.omit_done:
            return
        stop = "tool_use" if calls else ("max_tokens" if reply.done_reason == "length" else "end_turn")
        yield event(
            "message_delta",
            {
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        yield event("message_stop", {})
