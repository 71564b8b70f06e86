"""wf mcp: the board as an MCP server on stdio, for Claude Code, Cursor and other agents.

    claude mcp add workflow-hub -- wf mcp            # or, over HTTP: <board url>/mcp

Each tool is a call to the board API at --url (wf_common.mcp_board); commands are recorded as
`mcp:<client name>` (`mcp:cursor`), the name from the client's `initialize`. The token is found as for
every `wf` command (the data dir or WF_TOKEN).
"""

from __future__ import annotations

import argparse

import httpx
from wf_common.mcp_board import build_server

from wf_cli.client import HubClient


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    sub.add_parser(
        "mcp", help="serve the board to MCP clients (coding agents) on stdin/stdout", parents=[parent]
    ).set_defaults(func=serve)


def serve(args: argparse.Namespace, client: HubClient) -> int:
    base = client.base_url
    token = client.token or ""

    def http() -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=base, headers=headers, timeout=30, trust_env=False)

    build_server(http).run("stdio")
    return 0
