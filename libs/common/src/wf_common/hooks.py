"""Inbound webhooks (`wf hook create NAME --project P`, `POST /api/hooks/<name>`): the one home of the
signing rules, shared by the board API (which verifies) and the senders (the `wf` tests, scripts).

A delivery is a JSON body (`HookBody`), signed with HMAC-SHA256 over the raw bytes of the body:
header `X-WF-Signature: sha256=<hex>`. The body carries its own `delivery_id` (the sender's, reused
on a retry) and `timestamp` (Unix seconds), so the signature covers both: a captured delivery cannot be
replayed after `REPLAY_WINDOW_SECONDS`, and within it the same delivery id only answers the same task.

Secrets are not stored anywhere. Each hook's secret is derived, when needed, from a key only the
board API holds (itself derived from the API token, `hook_key`) and the hook's random `salt` (its
database row): reading the database alone is not enough to forge a delivery. A new API token makes
every hook secret new (re-create the hooks); deleting and re-creating a hook gives it a new secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from wf_common.fields import Criterion, LongText, Title
from wf_common.text import ITEMS_MAX, LINE_PATTERN

SIGNATURE_HEADER = "X-WF-Signature"
MAX_BODY_BYTES = 64 * 1024
REPLAY_WINDOW_SECONDS = 300
# Why a delivery was refused; each has its counter (hooks.refused_<reason>).
REFUSALS = ("signature", "replay", "too_large", "invalid")
Refusal = Literal["signature", "replay", "too_large", "invalid"]
HookAction = Literal["idea", "task"]

HOOK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
HookName = Annotated[str, StringConstraints(pattern=HOOK_NAME.pattern, min_length=1, max_length=40)]
DeliveryId = Annotated[str, StringConstraints(pattern=LINE_PATTERN, min_length=1, max_length=200)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

_KEY_LABEL = b"wf-hook-secrets-v1"


class HookBody(BaseModel):
    """What a sender posts. Unknown fields are ignored (a CI system's payload may carry more).
    An idea is `title` and `text` joined; a task takes `title` (else the first line of `text`),
    `text` as its description and `acceptance_criteria`."""

    model_config = ConfigDict(extra="ignore")

    delivery_id: DeliveryId = Field(description="the sender's id of this delivery; the same on a retry")
    timestamp: int = Field(description="when it was sent, Unix seconds", ge=0)
    title: Title | None = None
    text: LongText = ""
    acceptance_criteria: list[Criterion] = Field(default_factory=list, max_length=ITEMS_MAX)
    priority: int = Field(5, ge=1, le=10)


def hook_key(api_token: str) -> bytes:
    """The board's key for hook secrets: bound to the API token, never stored."""
    return hmac.new(api_token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def hook_secret(key: bytes, name: str, salt: str) -> str:
    """The hook's signing secret (shown once, by `wf hook create`)."""
    return hmac.new(key, f"{name}\n{salt}".encode(), hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes) -> str:
    """The `X-WF-Signature` header value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of an `X-WF-Signature` header against `body`."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().lower().encode())


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
