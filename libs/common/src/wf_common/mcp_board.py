"""The board as an MCP server (official `mcp` SDK): the same operations as the board API, through it.

Every tool is one HTTP call to the board API (`httpx.AsyncClient` given by the host: `wf mcp` talks
to the board's URL, the board's own `/mcp` endpoint calls itself in-process), so the API's rules,
validation and audit trail apply unchanged; commands are recorded as `mcp:<client name>` (the name
the client gave in its `initialize` clientInfo).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from mcp.server.fastmcp import Context, FastMCP

# The board records commands sent with this header's `mcp:<name>` as that actor
# (wf_board_api.state.get_actor; it allows 55 characters of `[A-Za-z0-9][A-Za-z0-9:._@/+-]*`).
CLIENT_HEADER = "X-WF-Client"
CLIENT_NAME_MAX = 50
UNNAMED_CLIENT = "mcp:unnamed-client"
_UNSAFE = re.compile(r"[^A-Za-z0-9._@/+-]+")


class BoardError(RuntimeError):
    """The board API refused or failed; the message is the API's own."""


def safe_client_name(name: object) -> str:
    """The actor for an MCP client's self-given name: `mcp:<name>` in plain characters (each run of
    anything else, spaces and control characters included, becomes one `_`), at most
    CLIENT_NAME_MAX of them, starting with a letter or digit; `mcp:unnamed-client` when nothing
    usable is left. The name is the client's own claim, so it is only ever a label."""
    text = name.strip() if isinstance(name, str) else ""
    cleaned = _UNSAFE.sub("_", text).lstrip("_.@/+-")[:CLIENT_NAME_MAX].rstrip("_")
    return f"mcp:{cleaned}" if cleaned else UNNAMED_CLIENT


def client_name(ctx: Context | None) -> str:  # type: ignore[type-arg]
    try:
        info = ctx.session.client_params.clientInfo  # type: ignore[union-attr]
    except AttributeError:
        return UNNAMED_CLIENT
    return safe_client_name(getattr(info, "name", None))


def _scoped(action: str, project: str | None, key: str | None) -> str:
    """The board API path that pauses or resumes everything, a project or a task."""
    if key and not project:
        raise BoardError("a task key needs its project: a key is unique within its project only")
    if project and key:
        return f"/api/projects/{quote(project, safe='')}/tasks/{quote(key, safe='')}/{action}"
    if project:
        return f"/api/projects/{quote(project, safe='')}/{action}"
    return f"/api/control/{action}"


def build_server(client: Callable[[], httpx.AsyncClient], *, streamable_path: str = "/mcp") -> FastMCP:
    mcp = FastMCP(
        "workflow-hub",
        instructions="Workflow Hub's kanban board: projects, tasks, ideas, feedback, gates, pause/resume.",
        streamable_http_path=streamable_path,
    )

    async def call(ctx: Context | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:  # type: ignore[type-arg]
        async with client() as http:
            resp = await http.request(method, path, json=body, headers={CLIENT_HEADER: client_name(ctx)})
        try:
            data = resp.json() if resp.content else None
        except json.JSONDecodeError:
            data = None
        if resp.status_code >= 400:
            message = data.get("message") if isinstance(data, dict) else resp.text
            raise BoardError(f"{method} {path} failed ({resp.status_code}): {message}")
        return data

    @mcp.tool()
    async def list_projects(ctx: Context) -> Any:  # type: ignore[type-arg]
        """The projects on the board."""
        return await call(ctx, "GET", "/api/projects")

    @mcp.tool()
    async def list_tasks(ctx: Context, project: str | None = None) -> Any:  # type: ignore[type-arg]
        """Tasks (key, title, stage, state, priority, blocked_by) of one project or all."""
        path = f"/api/tasks?project={project}" if project else "/api/tasks"
        return await call(ctx, "GET", path)

    @mcp.tool()
    async def get_task(ctx: Context, project: str, key: str) -> Any:  # type: ignore[type-arg]
        """A task with its history: handoffs, executions, bugs, feedback, attachments, cost."""
        return await call(ctx, "GET", f"/api/projects/{project}/tasks/{key}")

    @mcp.tool()
    async def submit_idea(ctx: Context, project: str, text: str, priority: int = 5) -> Any:  # type: ignore[type-arg]
        """Put an idea in the backlog; the PM agent breaks it down into tasks."""
        return await call(ctx, "POST", f"/api/projects/{project}/ideas", {"text": text, "priority": priority})

    @mcp.tool()
    async def add_feedback(
        ctx: Context,  # type: ignore[type-arg]
        project: str,
        key: str,
        text: str,
        file: str | None = None,
        line: int | None = None,
    ) -> Any:
        """A note for the agent of the task's next turn or execution (optionally on a file and line)."""
        body: dict[str, Any] = {"text": text}
        if file:
            body["file"] = file
        if line:
            body["line"] = line
        return await call(ctx, "POST", f"/api/projects/{project}/tasks/{key}/feedback", body)

    @mcp.tool()
    async def approve(ctx: Context, project: str, key: str, note: str = "") -> Any:  # type: ignore[type-arg]
        """Approve a task waiting at a gate (the PM's breakdown, a deploy)."""
        return await call(ctx, "POST", f"/api/projects/{project}/tasks/{key}/approve", {"note": note})

    @mcp.tool()
    async def reject(ctx: Context, project: str, key: str, reason: str) -> Any:  # type: ignore[type-arg]
        """Reject a task at a gate; the reason goes back to the agent."""
        return await call(ctx, "POST", f"/api/projects/{project}/tasks/{key}/reject", {"reason": reason})

    @mcp.tool()
    async def pause(ctx: Context, project: str | None = None, key: str | None = None) -> Any:  # type: ignore[type-arg]
        """Stop new agent work (running jobs freeze before their next model turn): everything, or
        one project, or one task of a project."""
        return await call(ctx, "POST", _scoped("pause", project, key))

    @mcp.tool()
    async def resume(ctx: Context, project: str | None = None, key: str | None = None) -> Any:  # type: ignore[type-arg]
        """Lift a pause: everything's, one project's, or one task's."""
        return await call(ctx, "POST", _scoped("resume", project, key))

    return mcp
