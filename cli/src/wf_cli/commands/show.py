"""wf show KEY: one task with its history: handoffs, executions (and what they cost), bugs, feedback."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from wf_cli.client import HubClient
from wf_cli.commands.common import add_project_flag, print_json, resolve_project, task_key, task_path
from wf_cli.text import cell, indented, table


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    sh = sub.add_parser("show", help="one task: description, criteria, history, executions, bugs",
                        parents=[parent])  # fmt: skip
    sh.add_argument("key", type=task_key, metavar="KEY")
    add_project_flag(sh)
    sh.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    sh.set_defaults(func=show)


def show(args: argparse.Namespace, client: HubClient) -> int:
    project = resolve_project(client, args.key, args.project)
    data = client.get(task_path(project, args.key))
    if args.json:
        print_json(data)
        return 0
    print(render(data if isinstance(data, dict) else {}))
    return 0


def when(value: Any) -> str:
    """An ISO timestamp as local time to the second; anything else cleaned as is."""
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(str(value)).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return cell(value, 30)


def usage_text(usage: Any) -> str:
    """Tokens, calls and time of an execution's usage, or of the task's cost summary, in one phrase."""
    if not isinstance(usage, dict):
        return cell(usage, 40) if usage not in (None, "", 0) else "-"
    parts = []
    if usage.get("executions"):
        n = int(usage["executions"])
        parts.append(f"{n} execution{'' if n == 1 else 's'}")
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    total = int(usage.get("total_tokens") or 0) or prompt + completion
    if total:
        parts.append(f"{total} tokens ({prompt} in, {completion} out)")
    if usage.get("llm_calls"):
        parts.append(f"{usage['llm_calls']} calls")
    if usage.get("duration_ms"):
        parts.append(f"{float(usage['duration_ms']) / 1000:.1f}s")
    if isinstance(usage.get("cost_usd"), int | float) and usage["cost_usd"]:
        parts.append(f"${float(usage['cost_usd']):.4f}")
    models = usage.get("models") or ([usage["model"]] if usage.get("model") else [])
    if isinstance(models, list) and models:
        parts.append(cell(", ".join(map(str, models)), 60))
    return ", ".join(parts) or "-"


def render(data: dict[str, Any]) -> str:
    inner = data.get("task")
    task: dict[str, Any] = inner if isinstance(inner, dict) else data
    out: list[str] = []
    out.append(
        f"{cell(task.get('key'), 12)}  {cell(task.get('title'), 200)}  [{cell(task.get('project'), 40)}]"
    )
    facts = [
        ("stage", task.get("stage")),
        ("state", task.get("state")),
        ("priority", task.get("priority")),
        ("rework", task.get("rework_count")),
        ("parent", task.get("parent")),
        ("blocked by", task.get("blocked_by")),
        ("created by", task.get("created_by")),
        ("updated", when(task.get("updated_at"))),
    ]
    out.append("  ".join(f"{name}: {cell(value, 60)}" for name, value in facts))
    if task.get("status_reason"):
        out.append(f"why: {cell(task['status_reason'], 300)}")

    out += ["", "Description", indented(task.get("description"))]
    criteria = task.get("acceptance_criteria") or []
    out += ["", "Acceptance criteria"]
    out += [f"  {i}. {cell(c, 300)}" for i, c in enumerate(criteria, 1)] or ["  -"]

    handoffs = _dicts(data.get("handoffs"))
    if handoffs:
        out += ["", "History"]
        rows = []
        for h in handoffs:
            approval = ""
            if h.get("requires_approval"):
                if h.get("approved_at"):
                    approval = f"approved by {cell(h.get('approved_by'), 40)} {when(h.get('approved_at'))}"
                elif h.get("rejected_at"):
                    approval = f"rejected by {cell(h.get('rejected_by'), 40)} {when(h.get('rejected_at'))}"
                else:
                    approval = "waiting for approval"
                if h.get("decision_note"):
                    approval += f": {cell(h['decision_note'], 60)}"
            rows.append([
                when(h.get("created_at")),
                f"{cell(h.get('from_stage'), 20)} → {cell(h.get('to_stage'), 20)}",
                cell(h.get("actor"), 30),
                cell(approval, 70),
                cell(h.get("notes"), 80),
            ])  # fmt: skip
        out.append(table(["WHEN", "MOVE", "BY", "APPROVAL", "NOTES"], rows, indent="  "))

    executions = _dicts(data.get("executions"))
    if executions:
        out += ["", "Executions"]
        rows = [
            [
                f"#{cell(e.get('id'), 10)}",
                cell(e.get("stage"), 20),
                cell(e.get("attempt"), 4),
                cell(e.get("status"), 12),
                cell(e.get("result_status"), 8),
                usage_text(e.get("usage")),
                cell(e.get("result_summary"), 80),
            ]
            for e in executions
        ]
        out.append(table(["JOB", "STAGE", "TRY", "STATUS", "RESULT", "USAGE", "SUMMARY"], rows, indent="  "))
    cost = usage_text(data.get("cost"))
    if cost != "-":
        out += ["", f"Cost: {cost}"]

    bugs = _dicts(data.get("bugs"))
    if bugs:
        out += ["", "Bugs"]
        rows = [
            [
                cell(b.get("key"), 12),
                cell(b.get("status"), 10),
                cell(b.get("source_stage"), 20),
                cell(b.get("title"), 80),
            ]
            for b in bugs
        ]
        out.append(table(["KEY", "STATUS", "FOUND IN", "TITLE"], rows, indent="  "))

    feedback = data.get("feedback")
    if isinstance(feedback, list) and feedback:
        out += ["", "Feedback"]
        for f in feedback:
            if isinstance(f, dict):
                out.append(f"  {when(f.get('created_at') or f.get('at'))}  {cell(f.get('actor'), 30)}")
                out.append(indented(f.get("text"), "    "))
            else:
                out.append(indented(f))

    attachments = _dicts(data.get("attachments"))
    if attachments:
        out += ["", "Files"]
        rows = [
            [cell(a.get("filename"), 60), f"{cell(a.get('size'), 12)} B", cell(a.get("bug_key"), 12),
             cell(a.get("url"), 80)]
            for a in attachments
        ]  # fmt: skip
        out.append(table(["NAME", "SIZE", "BUG", "URL"], rows, indent="  "))

    children = data.get("children")
    if isinstance(children, list) and children:
        # Keys (as the board API gives them) or task snapshots.
        keys = [c.get("key") if isinstance(c, dict) else c for c in children]
        out += ["", f"Tasks made from it: {cell(keys, 300)}"]
    return "\n".join(out)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
