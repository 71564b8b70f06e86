"""`wf url`, and how every client command finds the board and its token.

The board URL: --url, else $WF_URL, else the one in run.json of the running `wf start` on the data
dir, else http://127.0.0.1:8000. The token: $WF_TOKEN, else board.token in config.yaml, else
`<data dir>/secrets/api-token` (the data dir: --data-dir, else $WF_DATA_DIR, else the default one,
as for `wf start`). So on the machine running `wf start` nothing needs to be set.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from wf_cli.client import DEFAULT_URL
from wf_cli.credentials import API_TOKEN_FILE, find_api_token
from wf_cli.datadir import DataDir, default_data_dir, read_run_file
from wf_cli.errors import CliError


def board_login_url(board_url: str, token: str) -> str:
    """The board URL with the token: opening it signs the browser in (the board drops the token)."""
    return f"{board_url.rstrip('/')}/?{urlencode({'token': token})}"


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None
    token_hint: str


def data_dir_of(args: argparse.Namespace) -> DataDir:
    chosen: Path | None = getattr(args, "data_dir", None) or getattr(args, "global_data_dir", None)
    return DataDir((chosen or default_data_dir()).absolute())


def target(args: argparse.Namespace, env: Mapping[str, str]) -> Target:
    data = data_dir_of(args)
    url: str | None = getattr(args, "url", None)
    if not url or (url == DEFAULT_URL and not env.get("WF_URL")):
        run = read_run_file(data.run_file) or {}
        board = run.get("board")
        running = board.get("url") if isinstance(board, dict) else None
        url = running if isinstance(running, str) and running else url or DEFAULT_URL
    token = find_api_token(data, env)
    where = data.secrets / API_TOKEN_FILE
    hint = (
        f"sent the token from WF_TOKEN, board.token or {where}; is it the token of this board?"
        if token
        else f"no API token found: not in WF_TOKEN, board.token in config.yaml, or {where}; "
        "run `wf start` first, or pass --data-dir of the running one"
    )
    return Target(url=url.rstrip("/"), token=token, token_hint=hint)


def add_data_dir_flag(parser: argparse.ArgumentParser, *, default: object = None) -> None:
    parser.add_argument(
        "--data-dir",
        dest="global_data_dir",
        metavar="DIR",
        type=Path,
        default=default,
        help="data directory of `wf start`, where its API token is "
        f"(env WF_DATA_DIR; default {default_data_dir()})",
    )


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "url",
        parents=[parent],
        help="print the board's URL with the API token (opening it signs your browser in)",
        description="Print the URL `wf start` printed when it came up: the board with the API token. "
        "Opening it in a browser sets the board's session cookie. Keep it to yourself.",
    )
    p.set_defaults(func=run_url)


def run_url(args: argparse.Namespace) -> int:
    try:
        found = target(args, os.environ)
    except CliError as exc:
        print(f"wf: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    if found.token is None:
        print(f"wf: error: {found.token_hint}", file=sys.stderr)
        return 1
    print(board_login_url(found.url, found.token))
    return 0
