"""A small synchronous client for the board API (httpx), turning every failure into a CliError.

Every request carries the install's API token (``Authorization: Bearer``), found by
`wf_cli.credentials.find_api_token`; a 401 says where the token was looked for.

The board API answers errors as ``{"error": code, "message": text}``; the message is what the user
sees. Anything else that goes wrong (nothing listening, a timeout, a non-JSON answer) becomes a
message that names the URL and says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from wf_cli import __version__
from wf_cli.errors import ApiError, CliError, Unreachable
from wf_cli.text import clean

DEFAULT_URL = "http://127.0.0.1:8000"


def unreachable_message(base_url: str) -> str:
    return f"cannot reach Workflow Hub at {base_url} — is `wf start` running? (or set --url / WF_URL)"


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: str


class HubClient:
    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = 30.0,
        token: str | None = None,
        token_hint: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Said after a 401: where the token was looked for, or that none was found.
        self.token_hint = token_hint
        self.token = token
        headers = {
            "User-Agent": f"wf-cli/{__version__}",
            "Accept": "application/json",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            # The hub is local; a proxy from the environment would only get in the way.
            trust_env=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

    def get(self, path: str, params: Mapping[str, str | int | bool | None] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self.request("POST", path, body=body if body is not None else {})

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request("PATCH", path, body=body)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | bool | None] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        query = _query(params)
        try:
            resp = self._http.request(method, path, params=query, json=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return self._decode(method, path, resp)

    def events(
        self,
        last_event_id: str | None = None,
        params: Mapping[str, str | int | bool | None] | None = None,
        on_open: Callable[[], None] | None = None,
    ) -> Iterator[SseEvent]:
        """Follow GET /api/events (server-sent events) until the server closes the stream.

        `on_open` is called once the server accepted the stream, before any event arrives."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        # No read timeout: a quiet board sends nothing for minutes.
        timeout = httpx.Timeout(10.0, read=None)
        try:
            with self._http.stream(
                "GET", "/api/events", params=_query(params), headers=headers, timeout=timeout
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._decode("GET", "/api/events", resp)
                if on_open is not None:
                    on_open()
                yield from parse_sse(resp.iter_lines())
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None

    # ------------------------------------------------------------------ internals

    def _transport_error(self, exc: httpx.HTTPError) -> CliError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return Unreachable(unreachable_message(self.base_url))
        if isinstance(exc, httpx.TimeoutException):
            return CliError(
                f"Workflow Hub at {self.base_url} did not answer in time ({exc.__class__.__name__})"
            )
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return CliError(f"the connection to Workflow Hub at {self.base_url} broke: {exc}")
        return CliError(f"request to Workflow Hub at {self.base_url} failed: {exc}")

    def _decode(self, method: str, path: str, resp: httpx.Response) -> Any:
        try:
            data = resp.json() if resp.content else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
            if resp.is_success:
                raise CliError(
                    f"{method} {path} answered {resp.status_code} with something that is not JSON; "
                    f"is {self.base_url} really Workflow Hub?"
                ) from None
        if resp.is_success:
            return data
        code, message = _error_of(resp, data, f"{method} {path}")
        if resp.status_code == 401 and self.token_hint:
            message = f"{message} ({self.token_hint})"
        raise ApiError(resp.status_code, code, message)


def _query(params: Mapping[str, str | int | bool | None] | None) -> dict[str, str | int] | None:
    if not params:
        return None
    out: dict[str, str | int] = {}
    for k, v in params.items():
        if v is None:
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else v
    return out


def _error_of(resp: httpx.Response, data: Any, what: str) -> tuple[str, str]:
    """(code, message) of an error answer, whatever shape it came in."""
    status = f"{resp.status_code} {resp.reason_phrase}".strip()
    if isinstance(data, dict):
        if isinstance(data.get("message"), str):
            return str(data.get("error") or status), data["message"]
        detail = data.get("detail")  # FastAPI's own errors (unknown route, request validation)
        if isinstance(detail, str):
            return status, f"{detail} ({what} answered {status})"
        if isinstance(detail, list):
            parts = []
            for d in detail:
                if isinstance(d, dict):
                    loc = ".".join(str(p) for p in d.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {d.get('msg', d)}" if loc else str(d.get("msg", d)))
            if parts:
                return "invalid", "; ".join(parts)
    text = clean(resp.text, oneline=True)[:300]
    return status, f"{what} answered {status}" + (f": {text}" if text else "")


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Server-sent events from a stream of lines (https://html.spec.whatwg.org/#event-stream-interpretation)."""
    event_id: str | None = None
    event_type = ""
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield SseEvent(event_id, event_type or "message", "\n".join(data))
            event_type, data = "", []
            continue
        if line.startswith(":"):
            continue  # a comment: the server's keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event_type = value
        elif field == "id" and "\0" not in value:
            event_id = value
    # An event the stream ended in the middle of is dropped, as the spec says.
