"""Lines of agent output as the log window shows them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class OutputLine(BaseModel):
    id: int = Field(description="the event's stream sequence (its SSE id)")
    execution_id: int
    stage: str
    kind: str
    text: str


class OutputPage(BaseModel):
    lines: list[OutputLine]
    more: bool = Field(description="older lines exist before the first one")
