"""/mcp driven by the mcp SDK's own client over streamable HTTP: the tools reach the board API and
the real orchestrator, and commands are recorded as mcp:<client name>."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Implementation, TextContent
from wf_common.commands import Approve, Pause, Resume
from wf_orchestrator.app import Orchestrator

from tests.board.conftest import API_TOKEN, AUTH_HEADERS, CommandTap, new_project
from tests.orchestrator.hub import eventually


async def test_mcp_client_lists_tools_and_sends_commands_as_mcp_actor(
    live_url: str, orchestrator: Orchestrator, commands: CommandTap
) -> None:
    async with (
        httpx.AsyncClient(headers=AUTH_HEADERS, timeout=30) as http,
        streamable_http_client(f"{live_url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write, client_info=Implementation(name="claude-code", version="1")) as session,
    ):
        await session.initialize()
        names = {t.name for t in (await session.list_tools()).tools}
        assert {
            "list_projects",
            "list_tasks",
            "get_task",
            "submit_idea",
            "add_feedback",
            "approve",
            "reject",
            "pause",
            "resume",
        } <= names

        projects = await session.call_tool("list_projects", {})
        assert not projects.isError
        assert projects.content == []  # no projects yet: an empty list

        paused = await session.call_tool("pause", {})
        assert not paused.isError
        approved = await session.call_tool("approve", {"project": "calc", "key": "t-002"})
        assert approved.isError  # there is no project calc: the orchestrator's 404 comes back
        refusal = approved.content[0]
        assert isinstance(refusal, TextContent)
        assert "404" in refusal.text

        missing = await session.call_tool("get_task", {"project": "calc", "key": "T-001"})
        assert missing.isError
        text = missing.content[0]
        assert isinstance(text, TextContent)
        assert "404" in text.text
        assert "not found" in text.text

    kinds = [type(c) for c in commands.sent()]
    assert kinds == [Pause, Approve]
    assert {c.actor for c in commands.sent()} == {"mcp:claude-code"}
    approve = commands.sent()[1]
    assert isinstance(approve, Approve)
    assert approve.task_key == "T-002"


async def test_wf_mcp_on_stdio_talks_to_the_board(
    live_url: str, orchestrator: Orchestrator, commands: CommandTap
) -> None:
    import os
    import sys
    from pathlib import Path

    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    wf = str(Path(sys.executable).parent / "wf")
    env = {**os.environ, "WF_TOKEN": API_TOKEN}
    params = StdioServerParameters(command=wf, args=["--url", live_url, "mcp"], env=env)
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, client_info=Implementation(name="cursor", version="1")) as session,
    ):
        await session.initialize()
        result = await session.call_tool("resume", {})
        assert not result.isError
    assert [(c.type, c.actor) for c in commands.sent()] == [("resume", "mcp:cursor")]


def _json(result: CallToolResult) -> Any:
    """A tool's answer: FastMCP sends a dict as one JSON text, a list as one text per item."""
    assert not result.isError, result.content
    texts = [c.text for c in result.content if isinstance(c, TextContent)]
    return json.loads(texts[0]) if len(texts) == 1 else [json.loads(t) for t in texts]


async def test_mcp_tools_cover_ideas_tasks_feedback_gates_and_scoped_pauses(
    live_url: str, orchestrator: Orchestrator, commands: CommandTap, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=live_url, headers=AUTH_HEADERS, timeout=30) as api:
        await new_project(api, tmp_path / "calc", slug="calc")
    async with (
        httpx.AsyncClient(headers=AUTH_HEADERS, timeout=30) as http,
        streamable_http_client(f"{live_url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write, client_info=Implementation(name="claude-code", version="1")) as session,
    ):
        await session.initialize()
        assert [p["slug"] for p in [_json(await session.call_tool("list_projects", {}))]] == ["calc"]
        _json(await session.call_tool("submit_idea", {"project": "calc", "text": "Calculator with add"}))
        tasks = _json(await session.call_tool("list_tasks", {"project": "calc"}))
        [idea] = tasks if isinstance(tasks, list) else [tasks]
        assert idea["title"].startswith("Calculator with add")
        key = idea["key"]

        note = {"project": "calc", "key": key, "text": "Mind the types", "file": "calc/add.py", "line": 2}
        _json(await session.call_tool("add_feedback", note))
        task = _json(await session.call_tool("get_task", {"project": "calc", "key": key}))
        assert task["key"] == key
        # The task's history records the MCP client itself as who acted.
        assert task["created_by"] == "mcp:claude-code"
        assert [(f["file"], f["line"], f["text"], f["actor"]) for f in task["feedback"]] == [
            ("calc/add.py", 2, "Mind the types", "mcp:claude-code")
        ]
        assert "handoffs" in task
        assert "executions" in task

        # Not at a gate: the orchestrator's refusal comes back as the tool's error, with its reason.
        refused = await session.call_tool("reject", {"project": "calc", "key": key, "reason": "Too vague"})
        assert refused.isError
        assert isinstance(refused.content[0], TextContent)
        assert "approval" in refused.content[0].text.lower() or "gate" in refused.content[0].text.lower()

        _json(await session.call_tool("pause", {"project": "calc"}))
        _json(await session.call_tool("pause", {"project": "calc", "key": key}))
        _json(await session.call_tool("resume", {"project": "calc", "key": key}))
        _json(await session.call_tool("resume", {"project": "calc"}))
        lone_key = await session.call_tool("pause", {"key": key})
        assert lone_key.isError  # a key without its project is refused before anything is sent

    # The tap is a subscription of its own: it may hear the last command just after its reply came.
    async def all_heard() -> bool:
        return len([c for c in commands.sent() if c.type != "create_project"]) >= 7

    await eventually(all_heard, what="the tap to hear the seven commands")
    sent = [c for c in commands.sent() if c.type != "create_project"]
    assert [c.type for c in sent] == [
        "submit_idea",
        "add_feedback",
        "reject",
        "pause",
        "pause",
        "resume",
        "resume",
    ]
    assert {c.actor for c in sent} == {"mcp:claude-code"}
    scopes = [(c.project, c.task_key) for c in sent if isinstance(c, Pause | Resume)]
    assert scopes == [("calc", None), ("calc", key), ("calc", key), ("calc", None)]


@pytest.mark.parametrize(
    ("name", "actor"),
    [
        # Spaces, markup and control characters become `_`; the name stays a plain label.
        ("Claude Code <script>\n", "mcp:Claude_Code_script"),
        # Bounded: at most 50 characters of the client's name.
        ("a" * 300, "mcp:" + "a" * 50),
        # Nothing usable: a clear default rather than an empty or made-up name.
        ("", "mcp:unnamed-client"),
        ("\u2603 \u00e9", "mcp:unnamed-client"),
    ],
)
async def test_the_recorded_mcp_actor_is_the_client_name_made_safe(
    live_url: str, orchestrator: Orchestrator, commands: CommandTap, name: str, actor: str
) -> None:
    async with (
        httpx.AsyncClient(headers=AUTH_HEADERS, timeout=30) as http,
        streamable_http_client(f"{live_url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write, client_info=Implementation(name=name, version="1")) as session,
    ):
        await session.initialize()
        assert not (await session.call_tool("pause", {})).isError
        assert not (await session.call_tool("resume", {})).isError

    async def both_heard() -> bool:
        return len(commands.sent()) >= 2

    await eventually(both_heard, what="the tap to hear pause and resume")
    assert [(c.type, c.actor) for c in commands.sent()] == [("pause", actor), ("resume", actor)]
