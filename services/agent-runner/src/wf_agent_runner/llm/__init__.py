"""LLM adapters: one async interface (`LLMAdapter`) over model servers, built from config by
`build_adapter`. Errors are documented in `wf_agent_runner.llm.errors`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from wf_agent_runner.llm.base import ChatResult, LLMAdapter, Message, TokenCallback, ToolCall, Usage
from wf_agent_runner.llm.errors import (
    LLMError,
    LLMModelNotFound,
    LLMProtocolError,
    LLMStreamError,
    LLMUnavailable,
)
from wf_agent_runner.llm.fallback import FallbackAdapter
from wf_agent_runner.llm.ollama import OllamaAdapter

__all__ = [
    "ADAPTERS",
    "ChatResult",
    "FallbackAdapter",
    "LLMAdapter",
    "LLMError",
    "LLMModelNotFound",
    "LLMProtocolError",
    "LLMSettings",
    "LLMStreamError",
    "LLMUnavailable",
    "Message",
    "OllamaAdapter",
    "TokenCallback",
    "ToolCall",
    "Usage",
    "build_adapter",
]

ADAPTERS = ("ollama",)


class LLMSettings(Protocol):
    """The `llm_backend` block of config.yaml (wf_common.config.LLMBackendConfig has this shape).

    Read-only properties so that a pydantic model with narrower field types (e.g. `models` keyed
    by a Literal of roles, `fallback` of its own class) still matches.
    """

    @property
    def adapter(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def num_ctx(self) -> int: ...
    @property
    def timeout_seconds(self) -> float: ...
    @property
    def models(self) -> Mapping[Any, str]: ...
    @property
    def fallback(self) -> LLMSettings | None: ...


def build_adapter(llm: LLMSettings, role: str) -> LLMAdapter:
    """The adapter for an agent `role` ("pm", "dev", ...): `llm.models[role]` overrides `llm.model`,
    and a configured `fallback` (itself possibly with a fallback) wraps it in a FallbackAdapter."""
    kind = str(llm.adapter).strip().lower()
    if kind not in ADAPTERS:
        allowed = ", ".join(repr(a) for a in ADAPTERS)
        raise ValueError(f"llm_backend.adapter: unknown adapter {llm.adapter!r}; allowed values: {allowed}")
    # Build (and so validate) the fallback first: a config error there must not leak an open client.
    fallback = build_adapter(llm.fallback, role) if llm.fallback is not None else None
    model = llm.models.get(role, llm.model) if llm.models else llm.model
    adapter: LLMAdapter = OllamaAdapter(
        llm.host,
        model,
        num_ctx=llm.num_ctx,
        timeout_seconds=llm.timeout_seconds,
        # Not part of the config schema today; honoured if a settings object carries it.
        options=getattr(llm, "options", None),
    )
    return adapter if fallback is None else FallbackAdapter(adapter, fallback)
