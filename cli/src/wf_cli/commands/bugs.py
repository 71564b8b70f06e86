"""wf bugs, wf bug kill."""

from __future__ import annotations

import argparse
from typing import Any

from wf_common import text as rules

from wf_cli.client import HubClient
from wf_cli.commands.common import (
    add_project_flag,
    as_list,
    bug_key,
    check_project_exists,
    print_json,
    project_path,
    resolve_bug_project,
    text,
)
from wf_cli.text import cell, table


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    bl = sub.add_parser("bugs", help="list open and fixed bugs", parents=[parent])
    add_project_flag(bl, what="only this project")
    bl.add_argument("--task", type=str.upper, metavar="KEY", help="only the bugs of this task")
    bl.add_argument("--all", action="store_true", help="include killed bugs")
    bl.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    bl.set_defaults(func=list_bugs)

    bug = sub.add_parser("bug", help="act on one bug", parents=[parent])
    bsub = bug.add_subparsers(dest="bug_command", metavar="COMMAND", required=True)
    kill = bsub.add_parser("kill", help="drop a bug that is not worth fixing", parents=[parent])
    kill.add_argument("key", type=bug_key, metavar="KEY", help="e.g. B-001")
    add_project_flag(kill, what="the bug's project (found from the key when it is unique)")
    kill.add_argument(
        "--reason", type=text(rules.NOTE_MAX), default=None, metavar="TEXT", help="why it is not worth fixing"
    )
    kill.set_defaults(func=kill_bug)


def list_bugs(args: argparse.Namespace, client: HubClient) -> int:
    if args.project:
        check_project_exists(client, args.project)
    params: dict[str, Any] = {"project": args.project, "task": args.task, "include_killed": args.all or None}
    bugs = as_list(client.get("/api/bugs", params), "bugs")
    if args.json:
        print_json(bugs)
        return 0
    if not bugs:
        print("no bugs" + ("" if args.all else " (killed ones are hidden; --all shows them)"))
        return 0
    with_project = not args.project and len({b.get("project") for b in bugs}) > 1
    rows = [
        [
            cell(b.get("key"), 12),
            cell(b.get("task_key") or b.get("task"), 12),
            cell(b.get("status"), 10),
            cell(b.get("source_stage"), 20),
            *([cell(b.get("project"), 40)] if with_project else []),
            cell(b.get("title"), 80),
        ]
        for b in bugs
    ]
    headers = ["KEY", "TASK", "STATUS", "FOUND IN", *(["PROJECT"] if with_project else []), "TITLE"]
    print(table(headers, rows))
    return 0


def kill_bug(args: argparse.Namespace, client: HubClient) -> int:
    project = resolve_bug_project(client, args.key, args.project)
    body = {"reason": args.reason} if args.reason else {}
    client.post(project_path(project, f"bugs/{args.key}/kill"), body)
    print(f"killed bug {args.key} ({project})")
    return 0
