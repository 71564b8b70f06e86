"""An adapter that answers from a second backend when the first cannot be reached."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from wf_agent_runner.llm.base import Capabilities, ChatResult, LLMAdapter, Message, TokenCallback
from wf_agent_runner.llm.errors import LLMUnavailable

log = logging.getLogger(__name__)


class FallbackAdapter(LLMAdapter):
    """Tries `primary` on every call (it may come back); on `LLMUnavailable` that call goes to `fallback`.

    Other errors (model missing, bad request, broken stream) are not hidden: they need a fix, not a
    different server. If the primary had already streamed some tokens before it became unreachable,
    `on_token` receives the fallback's answer from the start after them.
    """

    def __init__(self, primary: LLMAdapter, fallback: LLMAdapter) -> None:
        self.primary = primary
        self.fallback = fallback
        self.model = primary.model
        self.tool_calls = primary.tool_calls

    def __repr__(self) -> str:
        return f"FallbackAdapter({self.primary!r}, {self.fallback!r})"

    async def chat(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        format: dict[str, Any] | str | None = None,
        on_token: TokenCallback | None = None,
        accepted: Collection[str] | None = None,
    ) -> ChatResult:
        try:
            return await self.primary.chat(
                messages, tools=tools, format=format, on_token=on_token, accepted=accepted
            )
        except LLMUnavailable as exc:
            log.warning("primary LLM unavailable, using fallback %r for this call: %s", self.fallback, exc)
            return await self.fallback.chat(
                messages, tools=tools, format=format, on_token=on_token, accepted=accepted
            )

    async def capabilities(self) -> Capabilities:
        return await self.primary.capabilities()

    async def aclose(self) -> None:
        try:
            await self.primary.aclose()
        finally:
            await self.fallback.aclose()
