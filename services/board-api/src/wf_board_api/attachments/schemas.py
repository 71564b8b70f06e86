"""Attachments as listed on a task (the content is downloaded from /api/attachments/{id})."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class AttachmentOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    bug_key: str | None
    created_by: str
    created_at: datetime
    url: str
