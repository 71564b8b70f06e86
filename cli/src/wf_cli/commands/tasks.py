"""wf status, and the commands that act on one task: approve, reject, edit, feedback, retry."""

from __future__ import annotations

import argparse
import re
from typing import Any

from wf_common import text as rules

from wf_cli.client import HubClient
from wf_cli.commands import branches
from wf_cli.commands.common import (
    add_project_flag,
    as_list,
    check_project_exists,
    line,
    print_json,
    resolve_project,
    stage_order,
    task_key,
    task_path,
    text,
)
from wf_cli.errors import UsageError
from wf_cli.text import cell, clean, table

# The fields of each task in `wf status --json`: a stable shape for scripts.
STATUS_FIELDS = ("key", "title", "stage", "state", "project", "parent")
# States in which nothing moves until a person acts.
NEEDS_YOU = {
    "awaiting_approval": "wf approve {ref}  or  wf reject {ref} --reason ...",
    "needs_human": "wf show {ref}, then wf feedback / wf edit / wf retry",
    "failed": "wf retry {ref}",
}


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    st = sub.add_parser("status", help="the board: every task by stage", parents=[parent])
    add_project_flag(st, what="only this project")
    st.add_argument("--json", action="store_true",
                    help="print paused, paused_projects, paused_tasks, pending_pushes and tasks")  # fmt: skip
    st.set_defaults(func=status)

    ap = sub.add_parser("approve", help="approve a task waiting at a gate", parents=[parent])
    ap.add_argument("key", type=task_key, metavar="KEY")
    add_project_flag(ap)
    ap.add_argument(
        "--note",
        type=text(rules.NOTE_MAX),
        default=None,
        metavar="TEXT",
        help="a note kept with the approval",
    )
    ap.set_defaults(func=approve)

    rj = sub.add_parser("reject", help="reject a task waiting at a gate, saying why", parents=[parent])
    rj.add_argument("key", type=task_key, metavar="KEY")
    rj.add_argument(
        "--reason", type=text(rules.NOTE_MAX), required=True, metavar="TEXT", help="what must change"
    )
    add_project_flag(rj)
    rj.set_defaults(func=reject)

    ed = sub.add_parser("edit", help="change a task's title, description, criteria, priority or dependencies",
                        parents=[parent])  # fmt: skip
    ed.add_argument("key", type=task_key, metavar="KEY")
    add_project_flag(ed)
    ed.add_argument("--title", type=line(rules.TITLE_MAX), metavar="TEXT")
    ed.add_argument("--description", type=text(rules.TEXT_MAX), metavar="TEXT")
    ed.add_argument("--criteria", action="append", metavar="TEXT",
                    help="an acceptance criterion; repeat for several (replaces the list)")  # fmt: skip
    ed.add_argument("--priority", type=int, choices=range(1, 11), metavar="N", help="1 (low) .. 10 (high)")
    ed.add_argument("--blocked-by", nargs="*", type=task_key, metavar="KEY",
                    help="tasks that must be done first (replaces the list; none clears it)")  # fmt: skip
    ed.set_defaults(func=edit)

    fb = sub.add_parser("feedback", help="tell the agents something about a task", parents=[parent])
    fb.add_argument("key", type=task_key, metavar="KEY")
    fb.add_argument("text", type=text(rules.TEXT_MAX), metavar="TEXT")
    add_project_flag(fb)
    fb.set_defaults(func=feedback)

    rt = sub.add_parser("retry", help="run a failed or stuck task's stage again", parents=[parent])
    rt.add_argument("key", type=task_key, metavar="KEY")
    add_project_flag(rt)
    rt.set_defaults(func=retry)


def _key_number(key: Any) -> tuple[int, str]:
    m = re.search(r"(\d+)$", str(key))
    return (int(m.group(1)) if m else 0, str(key))


def status(args: argparse.Namespace, client: HubClient) -> int:
    if args.project:
        check_project_exists(client, args.project)
    tasks = as_list(client.get("/api/tasks", {"project": args.project}), "tasks")
    control = client.get("/api/control")
    paused = bool(control.get("paused")) if isinstance(control, dict) else False
    order = stage_order(str(t.get("stage")) for t in tasks)
    tasks.sort(
        key=lambda t: (order.index(str(t.get("stage"))), str(t.get("project")), _key_number(t.get("key")))
    )

    if args.json:
        print_json({
            "paused": paused,
            **branches.scopes_and_pushes(control),
            "tasks": [{f: t.get(f) for f in STATUS_FIELDS} for t in tasks],
        })  # fmt: skip
        return 0

    print(
        "orchestration: PAUSED — no new jobs start until `wf resume`" if paused else "orchestration: running"
    )
    branches.print_scopes_and_pushes(control)
    if not tasks:
        print('\nno tasks yet: wf idea "what you want built" --project SLUG')
        return 0
    with_project = not args.project and len({t.get("project") for t in tasks}) > 1
    headers = ["STAGE", "KEY", "STATE", "PRI", *(["PROJECT"] if with_project else []), "TITLE"]
    rows = []
    previous = None
    for t in tasks:
        stage = str(t.get("stage"))
        rows.append([
            cell(stage, 20) if stage != previous else "",
            cell(t.get("key"), 12),
            cell(t.get("state"), 20),
            cell(t.get("priority"), 3),
            *([cell(t.get("project"), 40)] if with_project else []),
            cell(t.get("title"), 70),
        ])  # fmt: skip
        previous = stage
    print()
    print(table(headers, rows))
    for t in tasks:  # a job waiting for the model server says so ("waiting for the model server at …")
        if t.get("state") == "running" and str(t.get("status_reason") or "").startswith("waiting for"):
            print(f"  {cell(t.get('key'), 12)}: {cell(t.get('status_reason'), 200)}")
    waiting = [t for t in tasks if t.get("state") in NEEDS_YOU]
    print(f"\n{len(tasks)} task{'s' if len(tasks) != 1 else ''}", end="")
    if waiting:
        print(", waiting for you:")
        for t in waiting:
            state, key, project = str(t.get("state")), cell(t.get("key"), 12), cell(t.get("project"), 40)
            label = f"{key} ({project})" if with_project else key
            ref = f"{key} --project {project}" if with_project else key
            print(f"  {label} {state.replace('_', ' ')}: {NEEDS_YOU[state].format(ref=ref)}")
    else:
        print()
    return 0


def _outcome(data: Any) -> str:
    """' — now <stage> (<state>)' from an answer that carries the task, else ''."""
    task = data.get("task", data) if isinstance(data, dict) else None
    if isinstance(task, dict) and task.get("stage") and task.get("state"):
        return f" — now {clean(task['stage'], oneline=True)} ({clean(task['state'], oneline=True)})"
    return ""


def approve(args: argparse.Namespace, client: HubClient) -> int:
    project = resolve_project(client, args.key, args.project)
    body = {"note": args.note} if args.note else {}
    data = client.post(task_path(project, args.key, "approve"), body)
    print(f"approved {args.key} ({project}){_outcome(data)}")
    return 0


def reject(args: argparse.Namespace, client: HubClient) -> int:
    if not args.reason.strip():
        raise UsageError("--reason must say what has to change")
    project = resolve_project(client, args.key, args.project)
    data = client.post(task_path(project, args.key, "reject"), {"reason": args.reason})
    print(f"rejected {args.key} ({project}){_outcome(data)}")
    return 0


def edit(args: argparse.Namespace, client: HubClient) -> int:
    changes: dict[str, Any] = {}
    if args.title is not None:
        changes["title"] = args.title
    if args.description is not None:
        changes["description"] = args.description
    if args.criteria is not None:
        changes["acceptance_criteria"] = args.criteria
    if args.priority is not None:
        changes["priority"] = args.priority
    if args.blocked_by is not None:
        changes["blocked_by"] = args.blocked_by
    if not changes:
        raise UsageError(
            "nothing to change: give --title, --description, --criteria, --priority or --blocked-by"
        )
    project = resolve_project(client, args.key, args.project)
    data = client.patch(task_path(project, args.key), changes)
    print(f"updated {args.key} ({project}): {', '.join(changes)}{_outcome(data)}")
    return 0


def feedback(args: argparse.Namespace, client: HubClient) -> int:
    if not args.text.strip():
        raise UsageError("the feedback text is empty")
    project = resolve_project(client, args.key, args.project)
    client.post(task_path(project, args.key, "feedback"), {"text": args.text})
    print(f"feedback added to {args.key} ({project}); the next agent on it will read it")
    return 0


def retry(args: argparse.Namespace, client: HubClient) -> int:
    project = resolve_project(client, args.key, args.project)
    data = client.post(task_path(project, args.key, "retry"))
    print(f"retrying {args.key} ({project}){_outcome(data)}")
    return 0
