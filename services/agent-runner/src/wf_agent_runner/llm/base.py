"""The adapter interface every model backend implements, and the values it returns.

Messages are plain dicts in Ollama's chat format, so they can be sent as-is and stored as JSON:
``{"role": "system"|"user"|"assistant"|"tool", "content": str, "tool_calls"?: [...], "tool_name"?: str}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
TokenCallback = Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    # The server's id for the call (OpenAI `call_…`, Anthropic `toolu_…`); "" where there is none.
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Ollama's wire shape, for echoing the call back in the assistant message (plus the id)."""
        out: dict[str, Any] = {"function": {"name": self.name, "arguments": self.arguments}}
        if self.id:
            out["id"] = self.id
        return out


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_ms: float = 0.0


@dataclass(frozen=True)
class ChatResult:
    content: str
    tool_calls: list[ToolCall]
    usage: Usage
    model: str
    done_reason: str | None

    def as_message(self) -> Message:
        """The assistant message to append to the history before sending tool results."""
        msg: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [tc.to_dict() for tc in self.tool_calls]
        return msg


def prompt_messages(prompt: str, system: str | None) -> list[Message]:
    msgs: list[Message] = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": prompt})
    return msgs


async def emit(on_token: TokenCallback | None, piece: str) -> None:
    """Call a sync or async token callback."""
    if on_token is None:
        return
    result = on_token(piece)
    if inspect.isawaitable(result):
        await result


@dataclass(frozen=True)
class Capabilities:
    """What the start-up check found out about a backend's model."""

    reachable: bool
    model_found: bool | None  # None: the server does not list its models
    native_tools: bool  # False: the agent uses emulated tool calls (described in the prompt)
    detail: str  # one line for the log, e.g. "model qwen2.5-coder:0.5b: tools supported"


class LLMAdapter(ABC):
    """An async chat model. Subclasses implement `chat` and `aclose`; the rest is built on them."""

    model: str
    # Per-backend choice from config: "auto" (use the capability check), "native" or "emulated".
    tool_calls: str = "auto"

    @abstractmethod
    async def chat(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        format: dict[str, Any] | str | None = None,
        on_token: TokenCallback | None = None,
        accepted: Collection[str] | None = None,
    ) -> ChatResult:
        """One assistant turn. `tools` are function schemas, `format` a JSON schema or "json";
        `on_token` receives each content piece as it streams. `accepted` names the tools this turn
        accepts (the others stay described, so the prompt is the same every turn): emulated tool
        calls constrain the reply to those; native ones leave it to the caller to refuse the rest."""

    @abstractmethod
    async def aclose(self) -> None: ...

    async def capabilities(self) -> Capabilities:
        """Ask the server about the model (Ollama /api/show, /v1/models, ...). Never raises for an
        unreachable server: that is reported in the result."""
        return Capabilities(True, None, True, f"model {self.model}: no capability check for this backend")

    async def complete(self, prompt: str, system: str | None = None) -> str:
        return (await self.chat(prompt_messages(prompt, system))).content

    async def stream(self, prompt: str, system: str | None = None) -> AsyncIterator[str]:
        # chat() pushes pieces through a callback; a queue turns that into pull-style iteration.
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        task = asyncio.create_task(self.chat(prompt_messages(prompt, system), on_token=queue.put))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (piece := await queue.get()) is not None:
                yield piece
            await task  # re-raises the adapter's error, if any
        finally:
            if not task.done():  # the consumer stopped early: don't leave the request running
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def __aenter__(self) -> LLMAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
