"""GET /api/projects/{slug}/tasks/{key}/diff: what the task changed, per file with line numbers."""

from __future__ import annotations

from fastapi import APIRouter
from wf_common.fields import Slug, TaskKey

from wf_board_api.diff.schemas import DiffOut
from wf_board_api.diff.service import GitError, task_diff
from wf_board_api.errors import Unavailable
from wf_board_api.projects.service import require_project
from wf_board_api.schemas import ERROR_RESPONSES
from wf_board_api.state import Db
from wf_board_api.tasks.service import require_task

router = APIRouter(tags=["tasks"])


async def load_diff(db: Db, slug: str, key: str) -> DiffOut:
    project = await require_project(db, slug)
    task = await require_task(db, slug, key)
    try:
        return await task_diff(str(project["workspace"]), slug, str(task["key"]))
    except (GitError, OSError) as err:
        raise Unavailable(f"cannot read the diff from the workspace's git repository: {err}") from err


@router.get("/api/projects/{slug}/tasks/{key}/diff", response_model=DiffOut, responses=ERROR_RESPONSES)
async def get_diff(slug: Slug, key: TaskKey, db: Db) -> DiffOut:
    """Branch `wf/<KEY>` against the main branch; while there is no branch, the task's own commits."""
    return await load_diff(db, slug, key)
