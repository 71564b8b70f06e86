"""wf pause / wf resume: everything, one project (--project), or one task (KEY). A pause starts no new
jobs in its scope and freezes running ones before their next model turn; resume continues them."""

from __future__ import annotations

import argparse

from wf_cli.client import HubClient
from wf_cli.commands.common import add_project_flag, project_path, resolve_project, task_key, task_path


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    for name, func, what in (
        ("pause", pause, "start no new jobs and freeze running ones (all, a project, or a task)"),
        ("resume", resume, "continue after wf pause (the same scope)"),
    ):
        p = sub.add_parser(name, help=what, parents=[parent])
        p.add_argument("key", type=task_key, nargs="?", metavar="KEY", help="only this task")
        add_project_flag(p, what="only this project (or the task's project)")
        p.set_defaults(func=func)


def _scope(args: argparse.Namespace, client: HubClient, action: str) -> tuple[str, str]:
    """(path, what) for the scope the arguments name."""
    if args.key:
        project = resolve_project(client, args.key, args.project)
        return task_path(project, args.key, action), f"{args.key} ({project})"
    if args.project:
        return project_path(args.project, action), f"project {args.project}"
    return f"/api/control/{action}", "everything"


def pause(args: argparse.Namespace, client: HubClient) -> int:
    path, what = _scope(args, client, "pause")
    client.post(path)
    print(f"paused {what}: no new jobs start, running ones freeze before their next model turn; "
          "`wf resume` with the same arguments continues")  # fmt: skip
    return 0


def resume(args: argparse.Namespace, client: HubClient) -> int:
    path, what = _scope(args, client, "resume")
    client.post(path)
    print(f"resumed {what}: frozen jobs continue and queued tasks are dispatched again")
    return 0
