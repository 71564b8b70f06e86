"""A scripted model server that speaks the OpenAI chat-completions API over a real TCP socket.

`POST /v1/chat/completions` streams Server-Sent Events like OpenAI (and llama.cpp, vLLM, Groq) do:
a first chunk with `delta.role`, content deltas, `tool_calls` deltas split into pieces (id and name
first, then `arguments` JSON text in fragments), a chunk with `finish_reason`, a usage chunk with
empty `choices` when `stream_options.include_usage` is set, then `data: [DONE]`. Errors are
`{"error": {"message", "type", "code"}}` with the status; 429/503 carry `Retry-After`.
`GET /v1/models` lists the models.

    with ScriptedOpenAI() as fake:
        fake.queue(Reply.text("hello"), Reply.tool("write_file", path="a.py", content="x"))
        ...                          # base_url = fake.base_url

Replies and responders are those of `tests.fakes.ollama` (the responder gets the request body).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.ollama import Reply, Responder, ScriptedOllama, _words

__all__ = ["Reply", "ScriptedOpenAI"]

DEFAULT_MODELS = ("qwen2.5-coder-0.5b-instruct",)


def openai_error(status: int, message: str, *, retry_after: str | None = None) -> JSONResponse:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_exceeded",
    }.get(status, "server_error")
    headers = {"retry-after": retry_after} if retry_after is not None and status in (429, 503) else None
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": kind}},
        status_code=status,
        headers=headers,
    )


class ScriptedOpenAI(ScriptedOllama):
    def __init__(
        self,
        responder: Responder | None = None,
        models: Iterable[str] = DEFAULT_MODELS,
        *,
        api_key: str | None = None,
        retry_after: str = "0",
        reports_usage: bool = True,
    ) -> None:
        super().__init__(responder, models)
        # False: like llama-cpp-python's server, which ignores `stream_options` and streams no usage.
        self.reports_usage = reports_usage
        self.api_key = api_key  # when set, requests must carry `Authorization: Bearer <api_key>`
        self.retry_after = retry_after
        self.headers: list[dict[str, str]] = []  # headers of every chat request, in order
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
            ]
        )

    def __enter__(self) -> ScriptedOpenAI:
        self.start()
        return self

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def _authorized(self, request: Request) -> Response | None:
        if self.api_key is None:
            return None
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            given = request.headers.get("authorization", "")[7:]
            shown = f"{given[:3]}***{given[-4:]}" if len(given) > 8 else "***"
            return openai_error(401, f"Incorrect API key provided: {shown}.")
        return None

    async def _list_models(self, request: Request) -> Response:
        if denied := self._authorized(request):
            return denied
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "owner"} for m in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def _completions(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return openai_error(400, "We could not parse the JSON body of your request.")
        with self._lock:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
        if denied := self._authorized(request):
            return denied
        model = body.get("model")
        if not model:
            return openai_error(400, "you must provide a model parameter")
        if model not in self.models:
            return openai_error(404, f"The model `{model}` does not exist or you do not have access to it.")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return openai_error(400, "'messages' must be a non-empty array")
        reply = await self._next_reply(body, "chat")
        if isinstance(reply, Response):
            return openai_error(500, json.loads(bytes(reply.body)).get("error", "no reply"))
        if reply.delay > 0 and await self._sleep_or_stop(reply.delay):
            return openai_error(503, "ScriptedOpenAI is shutting down")
        if reply.error_status is not None:
            return openai_error(reply.error_status, reply.error_message, retry_after=self.retry_after)
        prompt_tokens = self._prompt_tokens(body)
        completion_tokens = max(1, len(_words(reply.content)) + len(reply.tool_calls))
        if body.get("stream") is not True:
            return JSONResponse(self._completion(body, reply, prompt_tokens, completion_tokens))
        return StreamingResponse(
            self._events(body, reply, prompt_tokens, completion_tokens), media_type="text/event-stream"
        )

    def _completion(self, body: dict[str, Any], reply: Reply, pt: int, ct: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": n, "arguments": a if isinstance(a, str) else json.dumps(a)},
                }
                for i, (n, a) in enumerate(reply.tool_calls)
            ]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": self._finish(reply)}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
        }

    @staticmethod
    def _finish(reply: Reply) -> str:
        return "tool_calls" if reply.tool_calls else ("length" if reply.done_reason == "length" else "stop")

    async def _events(self, body: dict[str, Any], reply: Reply, pt: int, ct: int) -> AsyncIterator[str]:
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "system_fingerprint": "fp_scripted",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            return f"data: {json.dumps(obj)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        words = _words(reply.content)
        size = max(1, reply.chunk_size)
        for i in range(0, len(words), size):
            yield chunk({"content": "".join(words[i : i + size])})
            await asyncio.sleep(0)
        for i, (name, args) in enumerate(reply.tool_calls):
            text = args if isinstance(args, str) else json.dumps(args)
            head = {"index": i, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "function"}
            yield chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
            step = max(1, len(text) // 3)
            for j in range(0, len(text), step):
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": text[j : j + step]}}]})
                await asyncio.sleep(0)
        if reply.mid_stream_error is not None:
            err = {"error": {"message": reply.mid_stream_error, "type": "server_error"}}
            yield f"data: {json.dumps(err)}\n\n"
            return
        if reply.omit_done:
            return
        yield chunk({}, self._finish(reply))
        if self.reports_usage and (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body["model"]}
            yield f"data: {json.dumps({**obj, 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"
