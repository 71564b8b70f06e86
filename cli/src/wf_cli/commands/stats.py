"""wf stats: the cost ledger and agent performance (GET /api/stats)."""

from __future__ import annotations

import argparse
from typing import Any

from wf_cli.client import HubClient
from wf_cli.commands.common import add_project_flag, check_project_exists, print_json
from wf_cli.text import cell, table


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    st = sub.add_parser(
        "stats", help="per role, task and model: runs, time, pass rate, tokens and money", parents=[parent]
    )
    add_project_flag(st, what="only this project")
    st.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    st.set_defaults(func=stats)


def stats(args: argparse.Namespace, client: HubClient) -> int:
    if args.project:
        check_project_exists(client, args.project)
    data = client.get("/api/stats", {"project": args.project})
    if args.json:
        print_json(data)
        return 0
    print(render(data if isinstance(data, dict) else {}))
    return 0


def money(value: Any) -> str:
    return f"${float(value):.4f}" if isinstance(value, int | float) and value else "-"


def seconds(value: Any) -> str:
    return f"{float(value):.1f}s" if isinstance(value, int | float) else "-"


def percent(value: Any) -> str:
    return f"{float(value) * 100:.0f}%" if isinstance(value, int | float) else "-"


def _rows(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def render(data: dict[str, Any]) -> str:
    out: list[str] = []
    roles = _rows(data, "roles")
    out.append("Agents")
    if roles:
        rows = [
            [
                cell(r.get("role"), 10),
                cell(r.get("executions"), 8),
                seconds(r.get("avg_seconds")),
                percent(r.get("pass_rate")),
                cell(r.get("prompt_tokens"), 12),
                cell(r.get("completion_tokens"), 12),
                money(r.get("cost_usd")),
            ]
            for r in roles
        ]
        out.append(
            table(["ROLE", "RUNS", "AVG", "PASS", "TOKENS IN", "TOKENS OUT", "COST"], rows, indent="  ")
        )
    else:
        out.append("  no finished executions yet")
    models = _rows(data, "models")
    if models:
        rows = [
            [
                cell(m.get("model"), 40),
                cell(m.get("executions"), 8),
                cell(m.get("prompt_tokens"), 12),
                cell(m.get("completion_tokens"), 12),
                money(m.get("cost_usd")),
            ]
            for m in models
        ]
        out += ["", "Models", table(["MODEL", "RUNS", "TOKENS IN", "TOKENS OUT", "COST"], rows, indent="  ")]
    tasks = _rows(data, "tasks")
    projects: dict[str, list[float]] = {}
    for t in tasks:  # per project: the sum of its tasks
        p = projects.setdefault(str(t.get("project")), [0, 0, 0.0, 0.0])
        p[0] += int(t.get("executions") or 0)
        p[1] += int(t.get("prompt_tokens") or 0) + int(t.get("completion_tokens") or 0)
        p[2] += float(t.get("cost_usd") or 0)
        p[3] += float(t.get("seconds") or 0)
    if len(projects) > 1:
        rows = [
            [cell(name, 30), cell(int(v[0]), 8), seconds(v[3]), cell(int(v[1]), 12), money(v[2])]
            for name, v in sorted(projects.items())
        ]
        out += ["", "Projects", table(["PROJECT", "RUNS", "TIME", "TOKENS", "COST"], rows, indent="  ")]
    if tasks:
        rows = [
            [
                cell(t.get("key"), 12),
                cell(t.get("project"), 20),
                cell(t.get("executions"), 6),
                seconds(t.get("seconds")),
                cell(int(t.get("prompt_tokens") or 0) + int(t.get("completion_tokens") or 0), 12),
                money(t.get("cost_usd")),
                cell(t.get("title"), 60),
            ]
            for t in tasks
        ]
        headers = ["TASK", "PROJECT", "RUNS", "TIME", "TOKENS", "COST", "TITLE"]
        out += ["", "Tasks", table(headers, rows, indent="  ")]
    running = _rows(data, "running")
    if running:
        rows = [
            [cell(r.get("key"), 12), cell(r.get("project"), 20), cell(r.get("stage"), 12),
             f"#{cell(r.get('execution_id'), 10)}", cell(r.get("runner_id"), 40)]
            for r in running
        ]  # fmt: skip
        out += ["", "Running", table(["TASK", "PROJECT", "STAGE", "JOB", "RUNNER"], rows, indent="  ")]
    hours = _rows(data, "throughput")
    if hours:
        total = sum(int(h.get("transitions") or 0) for h in hours)
        out += ["", f"Stage moves in the last 24 hours: {total}"]
    return "\n".join(out)
