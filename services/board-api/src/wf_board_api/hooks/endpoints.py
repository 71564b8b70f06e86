"""/api/hooks: `wf hook create | list | delete` (behind the API token like every /api route) and
POST /api/hooks/<name>, the one route the token does not guard (auth.py): a delivery is signed with
the hook's secret instead (wf_common.hooks), verified in hooks.service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from wf_common.commands import CreateHook, DeleteHook
from wf_common.fields import Slug
from wf_common.hooks import MAX_BODY_BYTES, SIGNATURE_HEADER, HookAction, HookBody, HookName

from wf_board_api.db import read_only
from wf_board_api.hooks import service
from wf_board_api.schemas import COMMAND_RESPONSES, ERROR_RESPONSES, Body, Responses, _error
from wf_board_api.state import Actor, Db, Gateway, State

router = APIRouter(tags=["hooks"])


DELIVERY_RESPONSES: Responses = {
    401: _error("bad_signature: no or a wrong X-WF-Signature; stale_timestamp: outside the 300 s window"),
    404: _error("there is no hook of that name"),
    409: _error("replayed_delivery: the delivery id was used before with another body"),
    413: _error("too_large: the body is over 64 KiB"),
    422: _error("the body is not JSON, or not a delivery (`message` names the field)"),
}
# The body is read raw (its bytes are what the signature covers); this states its shape.
DELIVERY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": HookBody.model_json_schema()}},
    },
    "parameters": [
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": True,
            "description": "sha256=<hex HMAC-SHA256 of the raw body with the hook's secret>",
            "schema": {"type": "string"},
        }
    ],
}


class HookIn(Body):
    name: HookName = Field(description="the hook's name, in its URL: /api/hooks/<name>")
    project: Slug
    action: HookAction = Field(
        "idea", description="what a delivery makes: an idea (for the PM) or a task (DEV)"
    )


@router.get("/api/hooks", responses=ERROR_RESPONSES)
async def list_hooks(db: Db) -> list[dict[str, Any]]:
    """Every hook with its counts: delivered, duplicates, and refused by reason."""
    return await service.list_hooks(db)


@router.post("/api/hooks", status_code=201, responses=COMMAND_RESPONSES)
async def create_hook(body: HookIn, state: State, actor: Actor, gateway: Gateway) -> dict[str, Any]:
    """Make a hook. The answer holds its signing secret: the only time it is shown."""
    made = await gateway.send(
        CreateHook(name=body.name, project=body.project, action=body.action, actor=actor)
    )
    secret = service.secret_of(state.settings.resolved_api_token(), body.name, str(made["salt"]))
    return {
        "name": body.name,
        "project": made["project"],
        "action": made["action"],
        "url": f"/api/hooks/{body.name}",
        "secret": secret,
        "signature_header": SIGNATURE_HEADER,
    }


@router.delete("/api/hooks/{name}", responses=COMMAND_RESPONSES)
async def delete_hook(name: HookName, actor: Actor, gateway: Gateway) -> dict[str, Any]:
    return await gateway.send(DeleteHook(name=name, actor=actor))


@router.post(
    "/api/hooks/{name}",
    status_code=202,
    responses=DELIVERY_RESPONSES,
    openapi_extra=DELIVERY_BODY,
)
async def deliver(name: str, request: Request, state: State) -> JSONResponse:
    """A signed delivery (`X-WF-Signature: sha256=<HMAC-SHA256 of the raw body>`): a JSON body with
    `delivery_id`, `timestamp` (Unix seconds) and `title`/`text` (plus `acceptance_criteria`,
    `priority` for a task). 202 with the task's key; the same delivery again answers the same key."""
    async with read_only(state.engine) as conn:  # not held open while the orchestrator works
        salt = await service.salt_of(conn, name)
    body = await _read_capped(request)
    delivery = service.Delivery(state.gateway, state.settings.resolved_api_token(), name)
    data = await delivery.accept(salt, body, request.headers.get(SIGNATURE_HEADER))
    return JSONResponse(data, status_code=202)


async def _read_capped(request: Request) -> bytes | None:
    """The body, or None once it is past MAX_BODY_BYTES (the rest is not read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
