"""/api/attachments/{id}: download one file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from wf_board_api.attachments import service
from wf_board_api.schemas import ERROR_RESPONSES
from wf_board_api.state import Db

router = APIRouter(prefix="/api/attachments", tags=["attachments"])


@router.get(
    "/{attachment_id}",
    response_class=Response,
    responses={**ERROR_RESPONSES, 200: {"content": {"application/octet-stream": {}}}},
)
async def download_attachment(attachment_id: Annotated[int, Path(ge=1, le=2**31 - 1)], db: Db) -> Response:
    """The file, always as a download; its name and type are cleaned (they come from agents)."""
    file = await service.download(db, attachment_id)
    return Response(file.content, media_type=file.media_type, headers=file.headers)
