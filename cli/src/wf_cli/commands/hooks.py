"""wf hook create NAME --project P | list | delete NAME: inbound webhooks (POST /api/hooks/<name>,
signed with the hook's secret; wf_common.hooks), through the board API's /api/hooks."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from wf_common.hooks import HOOK_NAME, SIGNATURE_HEADER

from wf_cli.client import HubClient
from wf_cli.commands.common import add_project_flag, as_list, print_json
from wf_cli.commands.show import when
from wf_cli.text import cell, table


def hook_name(raw: str) -> str:
    if not HOOK_NAME.match(raw):
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a hook name: a lowercase letter, then letters, digits, - or _ (40 at most)"
        )
    return raw


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    hook = sub.add_parser("hook", help="inbound webhooks that submit ideas or create tasks", parents=[parent])
    ops = hook.add_subparsers(dest="hook_command", metavar="OP", required=True)
    cr = ops.add_parser("create", help="make a hook and print its secret (shown this once)", parents=[parent])
    cr.add_argument(
        "name",
        type=hook_name,
        metavar="NAME",
        help="lowercase letters, digits, - and _; the URL is /api/hooks/NAME",
    )
    add_project_flag(cr, required=True, what="the project its deliveries go to")
    cr.add_argument(
        "--action", choices=["idea", "task"], default="idea",
        help="what a delivery makes: an idea for the PM (default) or a task straight for DEV",
    )  # fmt: skip
    cr.set_defaults(func=create)
    ls = ops.add_parser("list", help="the hooks with their deliveries and refusals", parents=[parent])
    ls.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    ls.set_defaults(func=list_hooks)
    rm = ops.add_parser("delete", help="delete a hook (its URL stops answering)", parents=[parent])
    rm.add_argument("name", type=hook_name, metavar="NAME")
    rm.set_defaults(func=delete)


def create(args: argparse.Namespace, client: HubClient) -> int:
    data = client.post("/api/hooks", {"name": args.name, "project": args.project, "action": args.action})
    made = f"{cell(data.get('name'), 40)} made for project {cell(data.get('project'), 40)}"
    print(f"hook {made} ({cell(data.get('action'), 5)})")
    print(f"url:    {client.base_url}{cell(data.get('url'), 80)}")
    print(f"secret: {data.get('secret')}")
    print(
        "Keep the secret now: it is not shown again. Sign each POST with the header "
        f"{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw body with the secret>; the JSON body "
        'needs "delivery_id", "timestamp" (Unix seconds) and "title" and/or "text".'
    )
    return 0


def list_hooks(args: argparse.Namespace, client: HubClient) -> int:
    hooks: list[dict[str, Any]] = as_list(client.get("/api/hooks"), "hooks")
    if args.json:
        print_json(hooks)
        return 0
    if not hooks:
        print("no hooks: make one with `wf hook create NAME --project SLUG`")
        return 0
    rows = []
    for h in hooks:
        refused = h.get("refused") or {}
        rows.append(
            [
                cell(h.get("name"), 40),
                cell(h.get("project"), 40),
                cell(h.get("action"), 5),
                str(h.get("delivered", 0)),
                str(h.get("duplicates", 0)),
                str(refused.get("signature", 0)),
                str(refused.get("replay", 0)),
                str(refused.get("too_large", 0)),
                str(refused.get("invalid", 0)),
                when(h.get("last_delivery_at")),
            ]
        )
    header = ["NAME", "PROJECT", "MAKES", "DELIVERED", "DUPLICATES"]
    header += ["BAD SIGNATURE", "REPLAYED", "TOO LARGE", "INVALID", "LAST DELIVERY"]
    print(table(header, rows))
    return 0


def delete(args: argparse.Namespace, client: HubClient) -> int:
    client.request("DELETE", f"/api/hooks/{quote(args.name, safe='')}")
    print(f"hook {cell(args.name, 40)} deleted; deliveries to it are refused from now on")
    return 0
