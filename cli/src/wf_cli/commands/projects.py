"""wf project create|list, wf idea."""

from __future__ import annotations

import argparse
from typing import Any

from wf_common import text as rules

from wf_cli.client import HubClient
from wf_cli.commands.common import (
    add_project_flag,
    as_list,
    line,
    print_json,
    project_path,
    slug,
    text,
    workspace,
)
from wf_cli.errors import CliError, UsageError
from wf_cli.text import cell, clean, table


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    project = sub.add_parser("project", help="create and list projects", parents=[parent])
    psub = project.add_subparsers(dest="project_command", metavar="COMMAND", required=True)

    create = psub.add_parser(
        "create", help="add a project (a git workspace the agents work in)", parents=[parent]
    )
    create.add_argument("slug", type=slug, metavar="SLUG", help="short name, e.g. listsnap")
    create.add_argument(
        "--workspace", type=workspace, required=True, metavar="DIR",
        help="the project's directory (a relative one is taken from the current directory)",
    )  # fmt: skip
    create.add_argument(
        "--name", type=line(rules.NAME_MAX), metavar="NAME", help="display name (default: the slug)"
    )
    create.add_argument(
        "--test-command", type=line(rules.COMMAND_MAX), metavar="CMD", help="how the agents run the tests"
    )
    create.set_defaults(func=project_create)

    lst = psub.add_parser("list", help="list the projects", parents=[parent])
    lst.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    lst.set_defaults(func=project_list)

    idea = sub.add_parser("idea", help="submit an idea: the PM agent breaks it into tasks", parents=[parent])
    idea.add_argument(
        "text", type=text(rules.TEXT_MAX), metavar="TEXT", help="what you want, in a sentence or a paragraph"
    )
    add_project_flag(idea, what="the project (may be left out when there is only one)")
    idea.add_argument("--priority", type=int, choices=range(1, 11), metavar="N", help="1 (low) .. 10 (high)")
    idea.set_defaults(func=submit_idea)


def project_create(args: argparse.Namespace, client: HubClient) -> int:
    # Resolved against this directory by the argument type: the server runs in another one.
    workspace = args.workspace
    body: dict[str, Any] = {"slug": args.slug, "workspace": workspace}
    if args.name:
        body["name"] = args.name
    if args.test_command:
        body["test_command"] = args.test_command
    data = client.post("/api/projects", body)
    shown = data if isinstance(data, dict) else {}
    name, where = clean(shown.get("slug", args.slug)), clean(shown.get("workspace", workspace))
    print(f"created project {name} (workspace {where})")
    print(f'next: wf idea "what you want built" --project {args.slug}')
    return 0


def project_list(args: argparse.Namespace, client: HubClient) -> int:
    projects = as_list(client.get("/api/projects"), "projects")
    if args.json:
        print_json(projects)
        return 0
    if not projects:
        print("no projects yet: wf project create SLUG --workspace DIR")
        return 0
    rows = [
        [
            cell(p.get("slug"), 40),
            cell(p.get("name"), 40),
            cell(p.get("workspace"), 80),
            cell(p.get("test_command")),
        ]
        for p in projects
    ]
    print(table(["SLUG", "NAME", "WORKSPACE", "TEST COMMAND"], rows))
    return 0


def submit_idea(args: argparse.Namespace, client: HubClient) -> int:
    project = args.project
    if not project:
        slugs = [str(p.get("slug")) for p in as_list(client.get("/api/projects"), "projects")]
        if not slugs:
            raise CliError("there are no projects yet: wf project create SLUG --workspace DIR")
        if len(slugs) > 1:
            raise UsageError(
                f"which project is the idea for? pass --project SLUG ({', '.join(clean(s) for s in slugs)})"
            )
        project = slugs[0]
    body: dict[str, Any] = {"text": args.text}
    if args.priority is not None:
        body["priority"] = args.priority
    data = client.post(project_path(project, "ideas"), body)
    task = data.get("task", data) if isinstance(data, dict) else {}
    key = task.get("key") if isinstance(task, dict) else None
    where = f" as {clean(key)}" if key else ""
    print(
        f"idea submitted to {project}{where}; the PM agent will break it into tasks (follow with: wf watch)"
    )
    return 0
