"""A scripted model server that speaks Ollama's HTTP API over a real TCP socket.

It runs uvicorn on its own thread and event loop, so it serves both in-process tests and services
started as separate OS processes (point their `llm_backend.host` at `fake.url`).

    with ScriptedOllama() as fake:
        fake.queue(Reply.text("hello"), Reply.tool("write_file", path="a.py", content="x"))
        ...                                   # talk to fake.url
        assert fake.requests[0]["model"] == "qwen2.5-coder:0.5b"

Replies come from the responder if one is set (it gets the request body; it may be async, but it
runs on the server's own loop, so it must not touch the test's asyncio objects), else from the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json as jsonlib
import re
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

OLLAMA_VERSION = "0.12.6"
DEFAULT_MODELS = ("qwen2.5-coder:0.5b",)


@dataclass
class Reply:
    """One scripted answer."""

    content: str = ""
    # (name, arguments); a str argument is sent verbatim, as some models produce JSON text.
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    # Answer with this HTTP status and {"error": error_message} instead of a stream.
    error_status: int | None = None
    error_message: str = "scripted error"
    # With error_status: a `Retry-After` header (Ollama itself sends none; a proxy in front may).
    retry_after: str | None = None
    # Stream the content, then an {"error": ...} line and end (a runner crash mid-answer).
    mid_stream_error: str | None = None
    # Seconds to wait before answering; a big value is a hung server (stop() still ends it).
    delay: float = 0.0
    # Words per streamed chunk.
    chunk_size: int = 1
    done_reason: str = "stop"
    # End the stream after the content without the final `done: true` chunk.
    omit_done: bool = False

    @classmethod
    def text(cls, content: str, **kw: Any) -> Reply:
        return cls(content=content, **kw)

    @classmethod
    def tool(cls, name: str, /, **arguments: Any) -> Reply:
        return cls(tool_calls=[(name, arguments)])

    @classmethod
    def json(cls, obj: Any, **kw: Any) -> Reply:
        """Content as structured output (`format`) would produce it."""
        return cls(content=jsonlib.dumps(obj), **kw)


Responder = Callable[[dict[str, Any]], "Reply | str | Awaitable[Reply | str]"]


def _norm(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _words(text: str) -> list[str]:
    # Pieces keep their whitespace so that joining the chunks gives the content back exactly.
    return re.findall(r"\s*\S+\s*|\s+", text)


def _error(status: int, message: str, retry_after: str | None = None) -> JSONResponse:
    headers = {"retry-after": retry_after} if retry_after is not None else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class ScriptedOllama:
    def __init__(self, responder: Responder | None = None, models: Iterable[str] = DEFAULT_MODELS) -> None:
        self.models = tuple(models)
        self.requests: list[dict[str, Any]] = []  # every /api/chat and /api/generate body, in order
        self.responder_errors: list[BaseException] = []
        self.url = ""
        self._responder = responder
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._app = Starlette(
            routes=[
                Route("/", self._root, methods=["GET", "HEAD"]),
                Route("/api/chat", self._chat, methods=["POST"]),
                Route("/api/generate", self._generate, methods=["POST"]),
                Route("/api/tags", self._tags, methods=["GET"]),
                Route("/api/version", self._version, methods=["GET"]),
                Route("/api/show", self._show, methods=["POST"]),
            ]
        )

    # -- control (test thread) -------------------------------------------------------------------

    def set_responder(self, responder: Responder | None) -> None:
        with self._lock:
            self._responder = responder

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    @property
    def pending(self) -> int:
        """Queued replies not yet served."""
        with self._lock:
            return len(self._replies)

    def start(self) -> ScriptedOllama:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            self._app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._stopping = asyncio.Event()
            ready.set()
            try:
                assert self._server is not None
                loop.run_until_complete(self._server.serve(sockets=[sock]))
            finally:
                sock.close()
                loop.close()

        self._thread = threading.Thread(target=run, name=f"scripted-ollama{self.url[16:]}", daemon=True)
        self._thread.start()
        ready.wait(5)
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"ScriptedOllama could not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._thread is None or self._server is None:
            return
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between
                self._loop.call_soon_threadsafe(self._stopping.set)  # wake replies sleeping in `delay`
        self._server.should_exit = True
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> ScriptedOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP handlers (server thread) -----------------------------------------------------------

    async def _root(self, request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def _version(self, request: Request) -> Response:
        return JSONResponse({"version": OLLAMA_VERSION})

    async def _tags(self, request: Request) -> Response:
        return JSONResponse({"models": [self._model_entry(m) for m in self.models]})

    async def _show(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        model = str(body.get("model") or body.get("name") or "")
        if _norm(model) not in {_norm(m) for m in self.models}:
            return _error(404, f"model '{model}' not found")
        return JSONResponse(
            {
                "license": "",
                "modelfile": f"FROM {model}\n",
                "parameters": "num_ctx 2048",
                "template": "{{ .Prompt }}",
                "details": self._model_entry(model)["details"],
                "model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768},
                "capabilities": ["completion", "tools"],
                "modified_at": _now(),
            }
        )

    async def _chat(self, request: Request) -> Response:
        return await self._answer(request, "chat")

    async def _generate(self, request: Request) -> Response:
        return await self._answer(request, "generate")

    async def _answer(self, request: Request, kind: str) -> Response:
        started = time.monotonic_ns()
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        with self._lock:
            self.requests.append(body)
        model = body.get("model")
        if not model:
            return _error(400, "model is required")
        if _norm(str(model)) not in {_norm(m) for m in self.models}:
            return _error(404, f'model "{model}" not found, try pulling it first')
        stream = body.get("stream", True) is not False
        # Like Ollama: an empty request only loads the model and consumes no scripted reply.
        if (kind == "chat" and not body.get("messages")) or (kind == "generate" and not body.get("prompt")):
            return JSONResponse(self._final(body, kind, started, "load", 0))

        reply = await self._next_reply(body, kind)
        if isinstance(reply, Response):
            return reply
        if reply.delay > 0 and await self._sleep_or_stop(reply.delay):
            return _error(503, "ScriptedOllama is shutting down")
        if reply.error_status is not None:
            return _error(reply.error_status, reply.error_message, reply.retry_after)

        words = _words(reply.content)
        size = max(1, reply.chunk_size)
        pieces = ["".join(words[i : i + size]) for i in range(0, len(words), size)]
        eval_count = max(1, len(words) + len(reply.tool_calls))
        if not stream:
            if reply.mid_stream_error is not None:
                return _error(500, reply.mid_stream_error)
            obj = self._final(body, kind, started, reply.done_reason, eval_count)
            self._put_content(obj, kind, reply.content, reply.tool_calls)
            return JSONResponse(obj)

        async def lines() -> AsyncIterator[str]:
            for piece in pieces:
                yield self._line(self._chunk(body, kind, piece, []))
                await asyncio.sleep(0)  # let each chunk go out on its own
            if kind == "chat" and reply.tool_calls:
                yield self._line(self._chunk(body, kind, "", reply.tool_calls))
            if reply.mid_stream_error is not None:
                yield self._line({"error": reply.mid_stream_error})
                return
            if not reply.omit_done:
                yield self._line(self._final(body, kind, started, reply.done_reason, eval_count))

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    # -- helpers ---------------------------------------------------------------------------------

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = jsonlib.loads(await request.body() or b"{}")
        except ValueError as exc:
            return _error(400, f"invalid JSON body: {exc}")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        return body

    async def _next_reply(self, body: dict[str, Any], kind: str) -> Reply | Response:
        with self._lock:
            responder = self._responder
            queued = self._replies.popleft() if responder is None and self._replies else None
        if responder is None:
            if queued is None:
                return _error(
                    500,
                    f"ScriptedOllama: no reply scripted for this /api/{kind} request "
                    "(queue is empty and no responder is set); call queue() or set_responder()",
                )
            return queued
        try:
            result = responder(body)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # noqa: BLE001 - a boundary: any failure is reported or logged, never crashes the loop
            self.responder_errors.append(exc)
            return _error(500, f"ScriptedOllama responder raised {exc!r}")
        if isinstance(result, str):
            return Reply.text(result)
        if not isinstance(result, Reply):
            return _error(500, f"ScriptedOllama responder returned {result!r}, expected a Reply")
        return result

    async def _sleep_or_stop(self, seconds: float) -> bool:
        """Sleep; True if the server is stopping meanwhile."""
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    @staticmethod
    def _line(obj: dict[str, Any]) -> str:
        return jsonlib.dumps(obj) + "\n"

    @staticmethod
    def _put_content(
        obj: dict[str, Any], kind: str, content: str, tool_calls: list[tuple[str, dict[str, Any] | str]]
    ) -> None:
        if kind == "generate":
            obj["response"] = content
            return
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "function": {"index": i, "name": name, "arguments": args}}
                for i, (name, args) in enumerate(tool_calls)
            ]
        obj["message"] = message

    def _chunk(
        self,
        body: dict[str, Any],
        kind: str,
        content: str,
        tool_calls: list[tuple[str, dict[str, Any] | str]],
    ) -> dict[str, Any]:
        obj: dict[str, Any] = {"model": body["model"], "created_at": _now()}
        self._put_content(obj, kind, content, tool_calls)
        obj["done"] = False
        return obj

    def _final(
        self, body: dict[str, Any], kind: str, started_ns: int, done_reason: str, eval_count: int
    ) -> dict[str, Any]:
        obj = self._chunk(body, kind, "", [])
        total = max(1, time.monotonic_ns() - started_ns)
        obj.update(
            done=True,
            done_reason=done_reason,
            total_duration=total,
            load_duration=total // 10,
        )
        if done_reason == "load":
            return obj
        if kind == "generate":
            obj["context"] = list(range(1, 4))
        obj.update(
            prompt_eval_count=self._prompt_tokens(body),
            prompt_eval_duration=total // 5,
            eval_count=eval_count,
            eval_duration=total // 2,
        )
        return obj

    @staticmethod
    def _prompt_tokens(body: dict[str, Any]) -> int:
        texts = [str(m.get("content") or "") for m in body.get("messages") or [] if isinstance(m, dict)]
        texts += [str(body.get("system") or ""), str(body.get("prompt") or "")]
        return max(1, sum(len(t.split()) for t in texts))

    @staticmethod
    def _model_entry(model: str) -> dict[str, Any]:
        return {
            "name": _norm(model),
            "model": _norm(model),
            "modified_at": _now(),
            "size": 397_821_319,
            "digest": "0" * 64,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "qwen2",
                "families": ["qwen2"],
                "parameter_size": "494.03M",
                "quantization_level": "Q4_K_M",
            },
        }
