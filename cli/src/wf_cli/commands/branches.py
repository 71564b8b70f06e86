"""wf rollback and wf checkpoints (each task works on branch wf/<KEY> with a checkpoint before every
stage), and the pause scopes and pending pushes that `wf status` shows."""

from __future__ import annotations

import argparse
from typing import Any

from wf_cli.client import HubClient
from wf_cli.commands.common import add_project_flag, print_json, resolve_project, task_key, task_path
from wf_cli.errors import UsageError
from wf_cli.text import cell, clean, table


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    rb = sub.add_parser(
        "rollback", help="reset a task's branch to the checkpoint before a stage and send it there",
        parents=[parent],
    )  # fmt: skip
    rb.add_argument("key", type=task_key, metavar="KEY")
    rb.add_argument("--to", required=True, dest="to_stage", metavar="STAGE", help="e.g. dev")
    add_project_flag(rb)
    rb.set_defaults(func=rollback)

    cp = sub.add_parser("checkpoints", help="a task's checkpoints (one before every stage)", parents=[parent])
    cp.add_argument("key", type=task_key, metavar="KEY")
    add_project_flag(cp)
    cp.add_argument("--json", action="store_true", help="print the API's answer")
    cp.set_defaults(func=checkpoints)


def rollback(args: argparse.Namespace, client: HubClient) -> int:
    stage = args.to_stage.strip().lower()
    if not stage:
        raise UsageError("--to must name a stage, e.g. --to dev")
    project = resolve_project(client, args.key, args.project)
    data = client.post(task_path(project, args.key, "rollback"), {"to_stage": stage})
    target = data.get("checkpoint", {}) if isinstance(data, dict) else {}
    saved = data.get("saved", {}) if isinstance(data, dict) else {}
    print(
        f"rolled {args.key} ({project}) back to checkpoint {cell(target.get('number'), 6)}-"
        f"{cell(target.get('stage'), 20)} ({cell(str(target.get('sha', ''))[:10], 10)}); "
        f"it goes to {stage} again"
    )
    print(f"what was there is kept as {cell(saved.get('ref'), 120)}")
    return 0


def checkpoints(args: argparse.Namespace, client: HubClient) -> int:
    project = resolve_project(client, args.key, args.project)
    data = client.get(task_path(project, args.key, "checkpoints"))
    if args.json:
        print_json(data)
        return 0
    found = data.get("checkpoints", []) if isinstance(data, dict) else []
    if not found:
        print(f"{args.key} has no checkpoints yet (one is written before each stage that runs on its branch)")
        return 0
    rows = [
        [cell(c.get("number"), 6), cell(c.get("stage"), 20), cell(str(c.get("sha", ""))[:10], 10),
         cell(c.get("at"), 30), cell(c.get("ref"), 120)]
        for c in found
    ]  # fmt: skip
    print(table(["N", "BEFORE", "SHA", "AT", "REF"], rows))
    print(f"\nwf rollback {args.key} --to STAGE resets wf/{args.key} to the latest checkpoint before STAGE")
    return 0


def scopes_and_pushes(control: Any) -> dict[str, Any]:
    """The part of GET /api/control that `wf status --json` adds."""
    c = control if isinstance(control, dict) else {}
    return {k: c.get(k, []) for k in ("paused_projects", "paused_tasks", "pending_pushes")}


def print_scopes_and_pushes(control: Any) -> None:
    c = scopes_and_pushes(control)
    if c["paused_projects"]:
        print("paused projects: " + ", ".join(clean(p, oneline=True) for p in c["paused_projects"]))
    if c["paused_tasks"]:
        names = [f"{clean(t.get('key'), oneline=True)} ({clean(t.get('project'), oneline=True)})"
                 for t in c["paused_tasks"] if isinstance(t, dict)]  # fmt: skip
        print("paused tasks: " + ", ".join(names))
    for p in c["pending_pushes"]:
        if isinstance(p, dict):
            print(
                f"push pending: {cell(p.get('project'), 40)} {cell(p.get('branch'), 60)} → "
                f"{cell(p.get('remote'), 60)} ({cell(p.get('attempts'), 6)} tries, next at "
                f"{cell(p.get('next_attempt_at'), 40)}): {cell(p.get('last_error'), 200)}"
            )
