"""The client commands: each module adds its subcommands to the parser with `register()`."""

from __future__ import annotations

from wf_cli.commands import bugs, control, mcp, projects, show, tasks, watch

MODULES = (projects, tasks, show, control, bugs, watch, mcp)
