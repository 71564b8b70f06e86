"""Errors raised by LLM adapters.

    LLMError                 base; anything the model server did that we could not use (retryable=False)
    ├── LLMUnavailable       the server could not be reached: connection refused, DNS failure,
    │                        connect/read timeout. The message names the URL tried and how to fix
    │                        it (retryable=True: the job can be retried later or on a fallback)
    ├── LLMModelNotFound     the server answered 404 for the model; the message says `ollama pull <model>`
    ├── LLMStreamError       the stream broke: an {"error": ...} object arrived mid-stream, or it ended
    │                        without a `done: true` chunk (retryable=True)
    └── LLMProtocolError     the server sent something that is not Ollama's NDJSON shape

Other HTTP errors (400 "does not support tools", 500 ...) raise plain `LLMError` carrying Ollama's
`error` text and the URL; 429/503 (server busy) are marked retryable on the instance.
"""

from __future__ import annotations


class LLMError(Exception):
    retryable: bool = False

    def __init__(self, message: str, *, url: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        if retryable is not None:
            self.retryable = retryable


class LLMUnavailable(LLMError):
    retryable = True


class LLMModelNotFound(LLMError):
    retryable = False

    def __init__(self, message: str, *, model: str, url: str | None = None) -> None:
        super().__init__(message, url=url)
        self.model = model


class LLMStreamError(LLMError):
    retryable = True


class LLMProtocolError(LLMError):
    retryable = False
