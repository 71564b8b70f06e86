"""LLM adapters: one async interface (`LLMAdapter`) over model servers, built from config by
`build_adapter`. Errors are documented in `wf_agent_runner.llm.errors`.

Adapters: `ollama` (/api/chat NDJSON), `openai` (any OpenAI-compatible /chat/completions, SSE),
`anthropic` (Messages API, SSE). Each backend is wrapped in a `ToolCallAdapter` (native tool calls
with repair of calls printed as text, or emulated ones for models without tool support), and a
fallback chain in nested `FallbackAdapter`s.
"""

from __future__ import annotations

from collections.abc import Mapping

from wf_common.config import LLMBackendConfig, backend_chain

from wf_agent_runner.llm.anthropic import AnthropicAdapter
from wf_agent_runner.llm.base import (
    Capabilities,
    ChatResult,
    LLMAdapter,
    Message,
    TokenCallback,
    ToolCall,
    Usage,
)
from wf_agent_runner.llm.errors import (
    LLMError,
    LLMModelNotFound,
    LLMProtocolError,
    LLMStreamError,
    LLMUnavailable,
)
from wf_agent_runner.llm.fallback import FallbackAdapter
from wf_agent_runner.llm.ollama import OllamaAdapter
from wf_agent_runner.llm.openai import OpenAIAdapter
from wf_agent_runner.llm.toolcalls import ToolCallAdapter

__all__ = [
    "ADAPTERS",
    "AnthropicAdapter",
    "Capabilities",
    "ChatResult",
    "FallbackAdapter",
    "LLMAdapter",
    "LLMError",
    "LLMModelNotFound",
    "LLMProtocolError",
    "LLMStreamError",
    "LLMUnavailable",
    "Message",
    "OllamaAdapter",
    "OpenAIAdapter",
    "TokenCallback",
    "ToolCall",
    "ToolCallAdapter",
    "Usage",
    "backend_adapters",
    "build_adapter",
]

ADAPTERS = ("ollama", "openai", "anthropic")


def backend_adapter(entry: LLMBackendConfig, model: str) -> LLMAdapter:
    """The raw adapter of one backend entry (no tool-call wrapper, no fallback)."""
    kind = str(entry.adapter).strip().lower()
    key = entry.api_key.get_secret_value() if entry.api_key is not None else None
    if kind == "ollama":
        return OllamaAdapter(
            entry.host,
            model,
            num_ctx=entry.num_ctx,
            timeout_seconds=entry.timeout_seconds,
            max_retries=entry.max_retries,
            tool_calls=entry.tool_calls,
        )
    if kind == "openai":
        return OpenAIAdapter(
            entry.host,
            model,
            api_key=key,
            max_tokens=entry.max_tokens,
            timeout_seconds=entry.timeout_seconds,
            max_retries=entry.max_retries,
            tool_calls=entry.tool_calls,
        )
    if kind == "anthropic":
        return AnthropicAdapter(
            entry.host,
            model,
            api_key=key,
            max_tokens=entry.max_tokens,
            timeout_seconds=entry.timeout_seconds,
            max_retries=entry.max_retries,
            tool_calls=entry.tool_calls,
        )
    allowed = ", ".join(repr(a) for a in ADAPTERS)
    raise ValueError(f"llm_backend.adapter: unknown adapter {entry.adapter!r}; allowed values: {allowed}")


def backend_adapters(
    llm: LLMBackendConfig, role: str, backends: Mapping[str, LLMBackendConfig] | None = None
) -> list[LLMAdapter]:
    """One wrapped adapter per backend of the role's chain, in fallback order."""
    chain = backend_chain(llm, dict(backends or {}), role)
    return [ToolCallAdapter(backend_adapter(entry, model)) for entry, model in chain]


def build_adapter(
    llm: LLMBackendConfig, role: str, backends: Mapping[str, LLMBackendConfig] | None = None
) -> LLMAdapter:
    """The adapter for an agent `role` ("pm", "dev", ...): `llm.models[role]` overrides `llm.model`
    (or names an entry of `backends`), and the `fallback` chain wraps it in FallbackAdapters."""
    adapters = backend_adapters(llm, role, backends)
    result = adapters[-1]
    for adapter in reversed(adapters[:-1]):
        result = FallbackAdapter(adapter, result)
    return result
