"""GET /api/projects/{slug}/tasks/{key}/output: the agent output of a task, newest `limit` lines
before `before` (an event id), oldest first."""

from __future__ import annotations

from typing import Annotated

import nats.errors
from fastapi import APIRouter, Query
from nats.js.errors import NotFoundError
from wf_common.fields import Slug, TaskKey

from wf_board_api.errors import Unavailable
from wf_board_api.output.schemas import OutputPage
from wf_board_api.output.service import older_output
from wf_board_api.schemas import ERROR_RESPONSES
from wf_board_api.state import Db, State
from wf_board_api.tasks.service import require_task

router = APIRouter(tags=["tasks"])


@router.get("/api/projects/{slug}/tasks/{key}/output", response_model=OutputPage, responses=ERROR_RESPONSES)
async def get_output(
    slug: Slug,
    key: TaskKey,
    db: Db,
    state: State,
    before: Annotated[int | None, Query(ge=1, description="only lines with an id below this")] = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 200,
    execution: Annotated[int | None, Query(ge=1, description="only this execution's lines")] = None,
) -> OutputPage:
    task = await require_task(db, slug, key)
    try:
        return await older_output(
            state.js, slug, str(task["key"]), before=before, limit=limit, execution=execution
        )
    except NotFoundError as err:
        raise Unavailable(f"the event stream does not exist yet ({err})") from err
    except nats.errors.Error as err:
        raise Unavailable(f"NATS is not answering ({err or type(err).__name__})") from err
