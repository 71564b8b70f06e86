"""The client commands: each module adds its subcommands to the parser with `register()`."""

from __future__ import annotations

from wf_cli.commands import branches, bugs, control, hooks, mcp, projects, show, stats, sync, tasks, watch

MODULES = (projects, tasks, show, control, branches, bugs, watch, stats, sync, hooks, mcp)
