"""The TaskAdapter contract every tracker connector implements, the item it returns, and the HTTP
plumbing they share: one httpx client per target whose errors say whether to retry, when, or never."""

from __future__ import annotations

import abc
import email.utils
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx


class RemoteError(Exception):
    """A call to the tracker failed; `retry` says whether trying again can help."""

    retry = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(RemoteError):
    """A 5xx, a timeout or a dropped connection: try again later."""

    retry = True

    def __init__(self, message: str, *, status: int | None = None, timed_out: bool = False) -> None:
        super().__init__(message, status=status)
        self.timed_out = timed_out


class RateLimited(TransientError):
    """429 (or GitHub's 403 with no calls left): wait `retry_after` seconds before the next call."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class PermanentError(RemoteError):
    """A refusal that repeating will not change (4xx): the operation is dead-lettered with this reason."""


class NotFound(PermanentError):
    pass


class StageMappingError(PermanentError):
    """A mapped stage is missing remotely, or a Jira status cannot be reached through the workflow."""


@dataclass
class RemoteItem:
    """One task as the tracker has it. `body` is markdown (converted from ADF / html_notes)."""

    remote_id: str
    title: str
    body: str
    stage: str | None  # the remote section/status/label/state name, None if it has none we map
    updated_at: datetime
    url: str = ""
    display_id: str = ""  # what a human calls it: WF-3, #12, ENG-7, or the Asana gid
    deleted: bool = False
    marker: str | None = None  # the local "project/KEY" this item was created for, when it says so


@dataclass
class RemoteComment:
    remote_id: str
    text: str
    author_id: str
    author_name: str
    created_at: datetime


@dataclass
class RemoteChange:
    """What change detection found: an item that changed (or was deleted) and who did it."""

    remote_id: str
    actor_id: str | None = None
    deleted: bool = False
    updated_at: datetime | None = None  # when the service says it changed, if it says


@dataclass
class Changes:
    changes: list[RemoteChange] = field(default_factory=list)
    cursor: str | None = None  # where the next poll starts
    full_resync: bool = False  # the service lost our place (Asana 412): reconcile everything


class TaskAdapter(abc.ABC):
    """The seed's pluggable task backend contract, async. One module per tracker implements it."""

    name: str

    @abc.abstractmethod
    async def start(self, stages: list[str]) -> None:
        """Learn who we are (our account id) and check the stage mapping against the remote; raises
        StageMappingError naming what is missing."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def self_id(self) -> str:
        """Our own account's id there: changes and comments by it are echoes of our own writes."""

    @abc.abstractmethod
    async def get_tasks_by_stage(self, stage: str) -> list[RemoteItem]:
        """Items in the remote column/status that `stage` (a remote stage name) maps to."""

    @abc.abstractmethod
    async def get_task(self, remote_id: str) -> RemoteItem | None:
        """The item, or None if it was deleted."""

    @abc.abstractmethod
    async def create_task(self, title: str, body: str, stage: str, marker: str) -> RemoteItem:
        """Create an item carrying `marker` (so find_by_marker can find it after a lost answer)."""

    @abc.abstractmethod
    async def find_by_marker(self, marker: str) -> RemoteItem | None: ...

    @abc.abstractmethod
    async def update_task(
        self, remote_id: str, *, title: str | None = None, body: str | None = None
    ) -> None: ...

    @abc.abstractmethod
    async def move_task_to_stage(self, remote_id: str, stage: str) -> None: ...

    @abc.abstractmethod
    async def delete_task(self, remote_id: str) -> str:
        """Delete the item (`propagate_deletes`), or close it where the API cannot delete; an item
        already gone is fine. Returns what was done, for the audit log ("deleted", "closed")."""

    @abc.abstractmethod
    async def add_comment(self, remote_id: str, text: str) -> str:
        """Post a comment; returns its remote id."""

    @abc.abstractmethod
    async def list_comments(self, remote_id: str) -> list[RemoteComment]: ...

    @abc.abstractmethod
    async def changes_since(self, cursor: str | None, since: datetime | None) -> Changes:
        """Items changed after `since` (polling with overlap), or from the service's own cursor."""

    async def get_task_history(self, remote_id: str) -> list[RemoteComment]:
        """What happened to the item, as far as the bridge uses it: its comments, oldest first."""
        return sorted(await self.list_comments(remote_id), key=lambda c: c.created_at)


def retry_after(response: httpx.Response, default: float = 5.0) -> float:
    """Seconds to wait, from Retry-After (seconds or HTTP date) or an epoch X-RateLimit-Reset."""
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, (parsed - datetime.now(UTC)).total_seconds())
    reset = response.headers.get("x-ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    return default


class Http:
    """An httpx client whose failures are RemoteErrors: rate limits, transient, permanent."""

    def __init__(
        self, service: str, base_url: str, *, headers: dict[str, str], timeout: float, auth: Any = None
    ) -> None:
        self.service = service
        self.client = httpx.AsyncClient(
            base_url=base_url, headers={"Accept": "application/json", **headers}, timeout=timeout, auth=auth
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def call(
        self, method: str, path: str, *, expect: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        """The response; statuses in `expect` are returned instead of raised."""
        try:
            r = await self.client.request(method, path, **kwargs)
        except httpx.TimeoutException as err:
            raise TransientError(f"{self.service}: {method} {path} timed out", timed_out=True) from err
        except httpx.TransportError as err:
            raise TransientError(f"{self.service}: {method} {path} failed: {err}") from err
        if r.status_code in expect:
            return r
        if r.status_code == 429 or (r.status_code == 403 and r.headers.get("x-ratelimit-remaining") == "0"):
            raise RateLimited(f"{self.service}: rate limited on {method} {path}", retry_after(r))
        if r.status_code >= 500:
            raise TransientError(
                f"{self.service}: {method} {path} answered {r.status_code}", status=r.status_code
            )
        if r.status_code == 404:
            raise NotFound(f"{self.service}: {method} {path}: not found", status=404)
        if r.status_code >= 400:
            raise PermanentError(
                f"{self.service}: {method} {path} answered {r.status_code}: {r.text[:300]}",
                status=r.status_code,
            )
        return r

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        r = await self.call(method, path, **kwargs)
        if r.status_code == 204 or not r.content:
            return None
        try:
            return r.json()
        except ValueError as err:
            raise TransientError(f"{self.service}: {method} {path} answered non-JSON") from err


def parse_time(value: str) -> datetime:
    """ISO 8601 as the services write it (Z or +hhmm offsets)."""
    v = value.replace("Z", "+00:00")
    if len(v) > 5 and v[-5] in "+-" and v[-3] != ":":  # Jira: 2026-01-01T10:00:00.000+0000
        v = v[:-2] + ":" + v[-2:]
    dt = datetime.fromisoformat(v)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
