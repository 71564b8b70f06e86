"""A small Server-Sent Events client for the tests: reads a real HTTP stream the way EventSource does."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.board.conftest import AUTH_HEADERS


@dataclass
class SSE:
    id: str | None
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


class EventStream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments: list[str] = []
        self.retry: int | None = None
        self._lines = response.aiter_lines()

    async def _next(self) -> SSE:
        fields: dict[str, list[str]] = {}
        while True:
            line = await anext(self._lines)
            if line == "":
                if fields:
                    return SSE(
                        id=fields.get("id", [None])[-1],
                        event=fields.get("event", [None])[-1],
                        data="\n".join(fields.get("data", [])),
                    )
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "retry":
                self.retry = int(value)
            else:
                fields.setdefault(name, []).append(value)

    async def next(self, within: float = 10.0) -> SSE:
        return await asyncio.wait_for(self._next(), within)

    async def take(self, count: int, within: float = 10.0) -> list[SSE]:
        return [await self.next(within) for _ in range(count)]

    async def wait_for_comment(self, text: str, within: float = 10.0) -> None:
        """Read until the comment `text` arrives (": connected" means the server has subscribed)."""

        async def until() -> None:
            while text not in self.comments:
                line = await anext(self._lines)
                if line == "":
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line.startswith("retry:"):
                    self.retry = int(line.partition(":")[2])
                else:
                    raise AssertionError(f"expected the comment {text!r} before any event, got {line!r}")

        await asyncio.wait_for(until(), within)


@contextlib.asynccontextmanager
async def open_stream(
    base_url: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[EventStream]:
    """Connect and wait until the server says it is subscribed; leaving the block disconnects."""
    async with (
        httpx.AsyncClient(
            base_url=base_url, headers=AUTH_HEADERS, timeout=httpx.Timeout(10.0, read=None)
        ) as http,
        http.stream("GET", "/api/events", params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        stream = EventStream(response)
        await stream.wait_for_comment("connected")
        yield stream
