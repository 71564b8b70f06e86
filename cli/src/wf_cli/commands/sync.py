"""wf sync status | link KEY REMOTE_ID | unlink KEY | resync: the mirror of tasks in Asana, Jira, GitHub
and Linear (task_backend.sync_to), through the board API's /api/sync/*."""

from __future__ import annotations

import argparse
from typing import Any

from wf_cli.client import HubClient
from wf_cli.commands.common import add_project_flag, print_json, resolve_project, task_key
from wf_cli.commands.show import when
from wf_cli.text import cell, table


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    sync = sub.add_parser("sync", help="tasks mirrored to Asana, Jira, GitHub, Linear", parents=[parent])
    ops = sync.add_subparsers(dest="sync_command", metavar="OP", required=True)
    st = ops.add_parser("status", help="per target: linked, last sync, pending, failures, dead letters",
                        parents=[parent])  # fmt: skip
    st.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    st.set_defaults(func=status)
    ln = ops.add_parser("link", help="link a task to an existing item there", parents=[parent])
    ln.add_argument("key", type=task_key, metavar="KEY")
    ln.add_argument(
        "remote_id", metavar="REMOTE_ID", help="the item's id there (Asana gid, Jira id, issue number)"
    )
    ln.add_argument("--target", help="which sync_to target (needed when there are several)")
    add_project_flag(ln)
    ln.set_defaults(func=link)
    un = ops.add_parser("unlink", help="stop mirroring a task to a target", parents=[parent])
    un.add_argument("key", type=task_key, metavar="KEY")
    un.add_argument("--target", help="which sync_to target (needed when there are several)")
    add_project_flag(un)
    un.set_defaults(func=unlink)
    rs = ops.add_parser("resync", help="reconcile every task with the trackers now", parents=[parent])
    rs.add_argument("--target", help="only this sync_to target")
    rs.set_defaults(func=resync)


def status(args: argparse.Namespace, client: HubClient) -> int:
    data: dict[str, Any] = client.get("/api/sync/status")
    if args.json:
        print_json(data)
        return 0
    targets = data.get("targets") or []
    if not targets:
        print("no sync targets: add task_backend.sync_to to config.yaml (see config.example.yaml)")
        return 0
    rows = [
        [
            cell(t.get("target"), 20),
            cell(t.get("adapter"), 8),
            str(t.get("linked", 0)),
            when(t.get("last_sync")),
            str(t.get("pending", 0)),
            str(t.get("failures", 0)),
            str(t.get("dead", 0)),
        ]
        for t in targets
    ]
    print(table(["TARGET", "ADAPTER", "LINKED", "LAST SYNC", "PENDING", "FAILURES", "DEAD"], rows))
    for t in targets:
        if t.get("dead") and t.get("last_dead_error"):
            print(f"{cell(t['target'], 20)}: last dead letter: {cell(t['last_dead_error'], 300)}")
    if not data.get("running"):
        print("the sync bridge is not running (wf start runs it when task_backend.sync_to is set)")
    return 0


def link(args: argparse.Namespace, client: HubClient) -> int:
    project = resolve_project(client, args.key, args.project)
    body = {"project": project, "key": args.key, "remote_id": args.remote_id, "target": args.target}
    data = client.post("/api/sync/link", body)
    shown = cell(data.get("display_id") or args.remote_id, 60)
    print(f"linked {project}/{args.key} to {shown} in {data.get('target')}")
    return 0


def unlink(args: argparse.Namespace, client: HubClient) -> int:
    project = resolve_project(client, args.key, args.project)
    data = client.post("/api/sync/unlink", {"project": project, "key": args.key, "target": args.target})
    print(f"unlinked {project}/{args.key} from {data.get('target')}; the item there is left as it is")
    return 0


def resync(args: argparse.Namespace, client: HubClient) -> int:
    data = client.post("/api/sync/resync", {"target": args.target})
    for target, n in (data.get("queued") or {}).items():
        print(f"{cell(target, 20)}: {n} task(s) queued for a full reconcile")
    return 0
