"""What /health reports."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Checks(BaseModel):
    nats: str
    database: str
    orchestrator: str
    runners: int
    # The sync bridge, when task_backend.sync_to is configured: "ok" or why not. Reported, not required:
    # the board works without the trackers.
    sync_bridge: str | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: Checks
    # Only when unavailable, in the shape of every other error.
    error: str | None = None
    message: str | None = None
