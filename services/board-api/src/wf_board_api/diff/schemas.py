"""A task's changes as the diff view shows them: files, hunks, lines with their numbers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class DiffLine(BaseModel):
    kind: Literal["context", "add", "del"]
    old: int | None = Field(None, description="line number in the old file")
    new: int | None = Field(None, description="line number in the new file")
    text: str


class DiffHunk(BaseModel):
    header: str
    lines: list[DiffLine]


class DiffFile(BaseModel):
    path: str
    old_path: str | None = None
    status: Literal["added", "deleted", "modified", "renamed", "binary"] = "modified"
    hunks: list[DiffHunk] = Field(default_factory=list)


class DiffOut(BaseModel):
    source: Literal["branch", "commits", "none"]
    base: str | None = Field(None, description="the main branch (source=branch)")
    branch: str | None = None
    commits: list[str] = Field(
        default_factory=list, description="commits found by their Workflow-Job trailer"
    )
    files: list[DiffFile]
    truncated: bool = False
    message: str = ""
