"""What /health reports."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Checks(BaseModel):
    nats: str
    database: str
    orchestrator: str
    runners: int


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: Checks
    # Only when unavailable, in the shape of every other error.
    error: str | None = None
    message: str | None = None
