"""`wf`: the command line of Workflow Hub.

`wf start` runs the whole stack on this machine; every other command talks to the board API over HTTP
(`--url`, env WF_URL, else the running `wf start`'s, default http://127.0.0.1:8000) with the API
token it finds on its own (wf_cli.url: env WF_TOKEN, board.token, or the data dir's secrets).
Exit codes: 0 ok, 1 failure (the message says why), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from wf_cli import __version__, url
from wf_cli.client import DEFAULT_URL, HubClient
from wf_cli.commands import MODULES
from wf_cli.errors import EXIT_FAILURE, CliError
from wf_cli.text import clean
from wf_cli.url import add_data_dir_flag


def build_parser() -> argparse.ArgumentParser:
    # `--url` is accepted before or after the command: `wf --url U status` and `wf status --url U`.
    # On the subcommands it has no default, so it only overrides when given there.
    url_flag = argparse.ArgumentParser(add_help=False)
    url_flag.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add_data_dir_flag(url_flag, default=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="wf",
        description="Workflow Hub: run a team of AI agents through a kanban pipeline on this machine.",
        epilog="Start with `wf start`, then `wf project create`, `wf idea`, `wf watch` and `wf status`.",
    )
    parser.add_argument("--version", action="version", version=f"wf {__version__}")
    parser.add_argument(
        "--url",
        default=os.environ.get("WF_URL") or DEFAULT_URL,
        help=f"the board API (env WF_URL; default: the running wf start's, else {DEFAULT_URL})",
    )
    add_data_dir_flag(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # Imported here: `wf start` pulls in the supervisor, which the client commands never need.
    from wf_cli import start

    start.register(sub)
    url.register(sub, url_flag)
    for module in MODULES:
        module.register(sub, url_flag)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("start", "url"):
        code: int = args.func(args)
        return code
    try:
        found = url.target(args, os.environ)
        with HubClient(found.url, token=found.token, token_hint=found.token_hint) as client:
            code = args.func(args, client)
            return code
    except CliError as exc:
        print(f"wf: error: {clean(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `wf status | head`: the reader left; nothing more to say
        return EXIT_FAILURE


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
