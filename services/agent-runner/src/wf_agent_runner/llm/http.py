"""HTTP plumbing the cloud-style adapters share: sending with rate-limit retries, reading SSE, turning
transport failures and error answers into `LLMError`s that name the URL and the fix, and keeping the
API key out of every message."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from wf_agent_runner.llm.errors import LLMError, LLMModelNotFound, LLMUnavailable

log = logging.getLogger(__name__)

# 429 rate limit, 503 busy, 529 Anthropic "overloaded": the same request may succeed later.
RETRY_STATUSES = frozenset({429, 503, 529})
MAX_RETRY_WAIT = 60.0
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Service:
    """Who we are talking to, for error messages: 'the OpenAI-compatible server at http://…'."""

    name: str
    base_url: str
    model: str
    api_key: str | None
    key_hint: str  # how to configure the key, e.g. "llm_backend.api_key: ${OPENAI_API_KEY}"
    # What to do when nothing answers at base_url.
    start_hint: str = "start it, or fix host/base_url of this backend in config.yaml"

    def redact(self, text: str) -> str:
        """The text with the API key (and any long piece of it) masked."""
        if self.api_key and len(self.api_key) >= 8:
            text = text.replace(self.api_key, "***")
            text = text.replace(self.api_key[:12], "***")
        return text


def retry_after_seconds(resp: httpx.Response) -> float | None:
    """`retry-after-ms`, `Retry-After` in seconds, or an HTTP date; None when absent or unreadable."""
    ms = resp.headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int, base: float) -> float:
    return float(min(MAX_RETRY_WAIT, base * (2 ** (attempt - 1))))


async def send(
    client: httpx.AsyncClient,
    request: Callable[[], httpx.Request],
    svc: Service,
    *,
    max_retries: int,
    backoff_base: float = 1.0,
    error: Callable[[httpx.Response], LLMError] | None = None,
) -> httpx.Response:
    """Send with `stream=True`; 429/503/529 answers are retried up to `max_retries` times after the
    server's Retry-After (or exponential backoff). The caller closes the response it gets back.
    Connection errors become `LLMUnavailable`; a final error status (body read) raises `error(resp)`,
    by default `http_error`."""
    attempt = 0
    while True:
        req = request()
        try:
            resp = await client.send(req, stream=True)
        except httpx.TimeoutException as exc:
            raise LLMUnavailable(
                f"the {svc.name} at {svc.base_url} did not respond in time ({reason(exc)}); "
                "raise timeout_seconds of this backend in config.yaml or use a smaller model",
                url=str(req.url),
            ) from exc
        except httpx.TransportError as exc:
            raise LLMUnavailable(
                f"could not reach the {svc.name} at {svc.base_url} ({reason(exc)}); {svc.start_hint}",
                url=str(req.url),
            ) from exc
        if resp.status_code < 400:
            return resp
        await resp.aread()
        await resp.aclose()
        if resp.status_code in RETRY_STATUSES and attempt < max_retries:
            attempt += 1
            wait = retry_after_seconds(resp)
            wait = backoff(attempt, backoff_base) if wait is None else min(wait, MAX_RETRY_WAIT)
            log.warning(
                "%s at %s answered %d; retry %d/%d in %.1fs",
                svc.name, svc.base_url, resp.status_code, attempt, max_retries, wait,
            )  # fmt: skip
            await asyncio.sleep(wait)
            continue
        raise (error or (lambda r: http_error(svc, r)))(resp)


def error_detail(resp: httpx.Response) -> str:
    """The server's own words: OpenAI/Anthropic put them under error.message."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or resp.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
        if body.get("message"):
            return str(body["message"])[:500]
    return json.dumps(body)[:500]


def http_error(svc: Service, resp: httpx.Response) -> LLMError:
    detail = svc.redact(error_detail(resp))
    url = str(resp.request.url)
    status = resp.status_code
    if status in (401, 403):
        return LLMError(
            f"the {svc.name} at {svc.base_url} refused the API key (HTTP {status}: {detail}); "
            f"set {svc.key_hint} in config.yaml and export the variable",
            url=url,
        )
    if status == 404 and "model" in detail.lower():
        return LLMModelNotFound(
            f"model {svc.model!r} is not available on the {svc.name} at {svc.base_url} ({detail}); "
            "change the model of this backend in config.yaml",
            model=svc.model,
            url=url,
        )
    if status in RETRY_STATUSES:
        return LLMError(
            f"the {svc.name} at {svc.base_url} is rate-limited or overloaded (HTTP {status}: {detail}) "
            "and stayed so after the retries",
            url=url,
            retryable=True,
        )
    return LLMError(
        f"the {svc.name} at {url} answered HTTP {status}: {detail}", url=url, retryable=status >= 500
    )


async def sse_events(resp: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream; `event` is "" when the server names none."""
    event, data = "", list[str]()
    async for line in resp.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def json_object(data: str, what: Callable[[str], LLMError]) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        raise what(f"an event that is not JSON: {data[:200]!r}") from exc
    if not isinstance(obj, dict):
        raise what(f"an event that is not a JSON object: {data[:200]!r}")
    return obj


def reason(exc: BaseException) -> str:
    """The root cause in a few words: httpx wraps it in several layers of generic messages."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "host name could not be resolved"
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, httpx.ReadTimeout):
        return "read timeout"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return str(exc) or type(exc).__name__


def parse_arguments(raw: Any, name: str, bad: Callable[[str], LLMError]) -> dict[str, Any]:
    """Tool-call arguments: an object, or JSON text of one (empty means no arguments)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise bad(f"tool call {name!r} arguments are not JSON: {raw[:200]!r}") from exc
    if not isinstance(raw, dict):
        raise bad(f"tool call {name!r} arguments are not an object: {raw!r}")
    return raw
