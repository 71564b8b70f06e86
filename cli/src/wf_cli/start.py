"""`wf start`: the whole of Workflow Hub on one machine, supervised, in the foreground.

Order of start: lock the data dir → stop leftovers of a crashed run → NATS → PostgreSQL (+ database
`workflow`) → migrations → orchestrator, agent-runners, board-api → wait for GET /health.
Order of stop (Ctrl-C, SIGTERM, SIGHUP): services (SIGTERM, then SIGKILL after 10 s) → PostgreSQL →
NATS. A second Ctrl-C kills the services at once. Everything lives under the data directory, so the
next start carries on where this one stopped. The sequence itself is `wf_cli.stack.Stack`; it is
imported only when `wf start` runs, so the client commands start fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from wf_cli.datadir import DataDir, InstanceLock, default_data_dir
from wf_cli.errors import CliError
from wf_cli.url import data_dir_of

if TYPE_CHECKING:
    from wf_common.config import WorkflowConfig

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("config.yaml")


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a TCP port (1-65535)")
    return port


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "start",
        help="run Workflow Hub here: NATS, PostgreSQL, orchestrator, agent-runners and the board",
        description="Run the whole stack in the foreground until Ctrl-C. State (streams, database, "
        "logs) stays in the data directory, so the next start resumes where this one stopped.",
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $WF_CONFIG, else ./config.yaml if it exists, else built-in defaults)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        help=f"where streams, database and logs live (default: {default_data_dir()})",
    )
    p.add_argument(
        "--port", type=_port, metavar="N", help="board API port (default: board.port from the config, 8000)"
    )
    p.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="do not copy service output to the terminal (it is always in <data dir>/logs)",
    )
    p.add_argument(
        "--health-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="say what is wrong if the board is not healthy after this long (default: 120)",
    )
    p.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=None,
        help="services' log level (default: $WF_LOG_LEVEL, else INFO)",
    )
    p.set_defaults(func=run_start)


def resolve_config(arg: str | None, env: Mapping[str, str]) -> tuple[WorkflowConfig, Path | None]:
    """(config, absolute path or None for the built-in defaults). Raises ConfigError."""
    from wf_common.config import load_config

    chosen = arg or env.get("WF_CONFIG") or (str(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else None)
    config = load_config(chosen)
    return config, Path(chosen).absolute() if chosen else None


def run_start(args: argparse.Namespace) -> int:
    import asyncio

    from wf_common.errors import ConfigError

    from wf_cli.stack import Stack

    env = dict(os.environ)
    try:
        config, config_path = resolve_config(args.config, env)
    except ConfigError as exc:
        print(f"wf: error: {exc}", file=sys.stderr)
        return 2
    data = data_dir_of(args)  # --data-dir before or after `start`
    lock = InstanceLock(data.lock_file)
    try:
        data.prepare()
        lock.acquire()
    except CliError as exc:
        print(f"wf: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    handlers = _setup_logging(data)
    try:
        if lock.previous_pid:
            log.info("the last wf start (pid %s) did not stop cleanly; taking over", lock.previous_pid)
        stack = Stack(
            config,
            config_path,
            data,
            env=env,
            port=args.port or config.board.port,
            echo=not args.quiet,
            health_timeout=args.health_timeout,
            log_level=args.log_level or env.get("WF_LOG_LEVEL") or "INFO",
        )
        return asyncio.run(stack.run())
    finally:
        lock.release()
        for h in handlers:
            logging.getLogger().removeHandler(h)
            h.close()


class _TerminalFormatter(logging.Formatter):
    """`          wf | message`, continuation lines under the bar (tracebacks, log tails)."""

    def format(self, record: logging.LogRecord) -> str:
        lines = super().format(record).splitlines() or [""]
        head, bar = f"{'wf':>12} | ", f"{'':>12} | "
        return "\n".join([head + lines[0], *(bar + ln for ln in lines[1:])])


class _TerminalFilter(logging.Filter):
    """Our own messages from INFO up; the libraries' (embedded servers) only from WARNING up."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("wf_cli") or record.levelno >= logging.WARNING


def _setup_logging(data: DataDir) -> list[logging.Handler]:
    term = logging.StreamHandler(sys.stdout)
    term.setFormatter(_TerminalFormatter("%(message)s"))
    term.addFilter(_TerminalFilter())
    file = logging.FileHandler(data.log("wf"), encoding="utf-8")
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for h in (term, file):
        root.addHandler(h)
    return [term, file]
