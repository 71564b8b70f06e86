"""The secrets of one install: made by `wf start` on first use, kept in `<data dir>/secrets/`.

    secrets/               mode 0700
      api-token            the board API token (unless board.token is set in config.yaml)
      postgres-postgres    the superuser's password (only `wf start` itself uses it)
      postgres-wf_orchestrator   the owner of the `workflow` database (orchestrator, migrations)
      postgres-wf_board    the read-only role of the board API
      nats-<kind>          the NATS password of each kind of client (NATS_KINDS)

Each file is mode 0600 and holds one value; they are made once and then kept, so URLs and
sessions stay valid across restarts. Delete one and restart `wf start` to rotate it (for the
PostgreSQL roles and NATS users the next start sets the new password).

The secrets travel to the services in their environment (WF_API_TOKEN, and the credentials inside
WF_NATS_URL and WF_DATABASE_URL), never on a command line, and are never logged or put in run.json.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wf_common.subjects import (
    COMMANDS_PREFIX,
    CONTROL_BUCKET,
    EVENTS_STREAM,
    JOBS_PREFIX,
    JOBS_STREAM,
    RESULTS_PREFIX,
    RUNNER_EVENTS_CONSUMER,
    RUNNERS_BUCKET,
    SYNC_BRIDGE_CONSUMER,
)

from wf_cli.datadir import DataDir
from wf_cli.embedded import NatsUser
from wf_cli.errors import CliError

log = logging.getLogger(__name__)

API_TOKEN_FILE = "api-token"  # noqa: S105 - a file name
PG_SUPERUSER = "postgres"
PG_OWNER = "wf_orchestrator"  # owns the `workflow` database; not a superuser
PG_READER = "wf_board"  # SELECT only, read-only transactions
NATS_KINDS = ("orchestrator", "runner", "board", "sync-bridge", "cli")

# What no client but the orchestrator may do: wipe the streams, answer commands as the orchestrator.
_NOT_ADMIN = ("$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>")
_CONTROL_WRITES = f"$KV.{CONTROL_BUCKET}.>"  # pausing goes through the orchestrator's command
_JS = "$JS.API"


def _others_commands(kind: str) -> tuple[str, ...]:
    """A login sends commands on wf.cmd.<its kind>.<type> only: not on wf.cmd.<type> (the
    orchestrator's own) nor on another kind's, so the orchestrator knows which login sent a command
    and refuses an actor that login may not name (wf_common.commands.SENDERS)."""
    others = (f"{COMMANDS_PREFIX}.{other}.>" for other in NATS_KINDS if other != kind)
    return (f"{COMMANDS_PREFIX}.*", *others)


def _others_durables(stream: str, durables: tuple[str, ...]) -> tuple[str, ...]:
    """What a login with throwaway consumers on `stream` may still not do to the named durables:
    replace, delete, drain them or ack their messages."""
    ops = tuple(
        f"{_JS}.{op}.{stream}.{name}{tail}"
        for name in durables
        for op in ("CONSUMER.CREATE", "CONSUMER.DELETE", "CONSUMER.MSG.NEXT")
        for tail in ("", ".>")
    )
    return (*ops, *(f"$JS.ACK.{stream}.{name}.>" for name in durables))


_NO_JOBS_OR_RESULTS = (f"{JOBS_PREFIX}.>", f"{RESULTS_PREFIX}.>", _CONTROL_WRITES, *_NOT_ADMIN)
NATS_DENY_PUBLISH: dict[str, tuple[str, ...]] = {
    "orchestrator": (),
    # Runners take jobs and publish results, events and heartbeats; they do not make jobs or
    # send commands (an agent's process must not approve its own deploy).
    "runner": (f"{JOBS_PREFIX}.>", f"{COMMANDS_PREFIX}.>", _CONTROL_WRITES, *_NOT_ADMIN),
    # The board, the sync bridge and the CLI send commands (on their own subjects) and read; they
    # never forge jobs or results.
    "sync-bridge": (*_NO_JOBS_OR_RESULTS, *_others_commands("sync-bridge")),
    # ... and the throwaway consumers of the board and the CLI on WF_EVENTS (NATS_ALLOW_PUBLISH)
    # leave the other services' durables there alone.
    **{
        kind: (
            *_NO_JOBS_OR_RESULTS,
            *_others_commands(kind),
            *_others_durables(EVENTS_STREAM, (RUNNER_EVENTS_CONSUMER, SYNC_BRIDGE_CONSUMER)),
        )
        for kind in ("board", "cli")
    },
}

# The JetStream API: only the orchestrator's login (the orchestrator, and `wf start` declaring the
# topology before the services start) creates, changes or deletes streams, consumers and buckets.
# Every other login may publish on our own subjects (wf.>, less the denials above) and on the JetStream
# subjects its service uses, nothing else: no $JS.API.STREAM.CREATE (a stream capturing or republishing
# another service's subjects), no deleting a stream, no consumer on another service's stream.
_READ_INFO = (f"{_JS}.INFO", f"{_JS}.STREAM.INFO.*", f"{_JS}.CONSUMER.INFO.*.*")


def _read_kv(bucket: str) -> tuple[str, ...]:
    """Get a key (direct or stored-message get) and watch or list keys (an ephemeral ordered consumer)."""
    stream = f"KV_{bucket}"
    return (
        f"{_JS}.DIRECT.GET.{stream}",
        f"{_JS}.DIRECT.GET.{stream}.>",
        f"{_JS}.STREAM.MSG.GET.{stream}",
        f"{_JS}.CONSUMER.CREATE.{stream}",
        f"{_JS}.CONSUMER.CREATE.{stream}.>",
    )


def _pull(stream: str, consumer: str) -> tuple[str, ...]:
    """Fetch from a durable pull consumer and ack (nak, term, in-progress) what it delivered."""
    return (f"{_JS}.CONSUMER.MSG.NEXT.{stream}.{consumer}", f"$JS.ACK.{stream}.{consumer}.>")


# Throwaway consumers on WF_EVENTS: made, pulled from (and acked), deleted. Made under a name of
# their own only (`…CREATE.WF_EVENTS.<name>[.<filter>]`, wf_common.bus.name_throwaway_consumers): the
# unnamed subject `…CREATE.WF_EVENTS` takes the name from the body, which could replace a durable.
_READ_EVENTS = (
    f"{_JS}.CONSUMER.CREATE.{EVENTS_STREAM}.>",
    f"{_JS}.CONSUMER.MSG.NEXT.{EVENTS_STREAM}.*",
    f"{_JS}.CONSUMER.DELETE.{EVENTS_STREAM}.*",
    f"$JS.ACK.{EVENTS_STREAM}.>",
)
# Our own subjects, request replies and push consumers' flow-control replies.
_OWN = ("wf.>", "_INBOX.>", "$JS.FC.>", *_READ_INFO)
NATS_ALLOW_PUBLISH: dict[str, tuple[str, ...] | None] = {
    "orchestrator": None,  # everything: it owns the topology
    # Any stage's job queue (one login for all runners), heartbeats in wf_runners, pauses read.
    "runner": (
        *_OWN, *_pull(JOBS_STREAM, "*"), f"$KV.{RUNNERS_BUCKET}.>",
        *_read_kv(CONTROL_BUCKET), *_read_kv(RUNNERS_BUCKET),
    ),
    # Throwaway (ephemeral) consumers on WF_EVENTS for the live feed and the output pages; the
    # durables of other services on WF_EVENTS are denied (NATS_DENY_PUBLISH).
    "board": (*_OWN, *_READ_EVENTS, *_read_kv(CONTROL_BUCKET), *_read_kv(RUNNERS_BUCKET)),
    # Its own durable on WF_EVENTS, made (or updated) by the bridge at start.
    "sync-bridge": (
        *_OWN, f"{_JS}.CONSUMER.DURABLE.CREATE.{EVENTS_STREAM}.{SYNC_BRIDGE_CONSUMER}",
        *_pull(EVENTS_STREAM, SYNC_BRIDGE_CONSUMER),
    ),
    # The operator's `nats` CLI reads as the board does (`nats stream view WF_EVENTS`, `nats kv get`).
    "cli": (*_OWN, *_READ_EVENTS, *_read_kv(CONTROL_BUCKET), *_read_kv(RUNNERS_BUCKET)),
}  # fmt: skip


# Only the orchestrator listens on wf.cmd.>: nobody else can take a command and answer it.
NATS_DENY_SUBSCRIBE = {
    kind: (() if kind == "orchestrator" else (f"{COMMANDS_PREFIX}.>",)) for kind in NATS_KINDS
}


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def read_secret(path: Path) -> str | None:
    """The value in a secret file, None if there is none."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    return value or None


def ensure_secret(path: Path) -> str:
    """The secret in `path`, made (random, mode 0600, in a 0700 directory) if missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.parent.chmod(0o700)
    existing = read_secret(path)
    if existing is not None:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            log.warning("%s could be read by other users; making it private (mode 0600)", path)
            path.chmod(0o600)
        return existing
    value = new_secret()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    os.replace(tmp, path)
    return value


@dataclass(frozen=True)
class Credentials:
    api_token: str = field(repr=False)
    postgres: Mapping[str, str] = field(repr=False)  # role -> password
    nats: Mapping[str, str] = field(repr=False)  # kind -> password

    def nats_users(self) -> list[NatsUser]:
        return [
            NatsUser(
                kind,
                self.nats[kind],
                NATS_DENY_PUBLISH[kind],
                NATS_DENY_SUBSCRIBE[kind],
                NATS_ALLOW_PUBLISH[kind],
            )
            for kind in NATS_KINDS
        ]

    def values(self) -> list[str]:
        """Every secret, for checks that none leaked."""
        return [self.api_token, *self.postgres.values(), *self.nats.values()]


def load_credentials(data: DataDir, config_token: str | None = None) -> Credentials:
    """The install's secrets, made where missing. `config_token` (board.token) replaces the file's."""
    try:
        token = config_token or ensure_secret(data.secrets / API_TOKEN_FILE)
        pg = {
            role: ensure_secret(data.secrets / f"postgres-{role}")
            for role in (PG_SUPERUSER, PG_OWNER, PG_READER)
        }
        nats = {kind: ensure_secret(data.secrets / f"nats-{kind}") for kind in NATS_KINDS}
    except OSError as exc:
        raise CliError(f"cannot keep the secrets in {data.secrets}: {exc.strerror or exc}") from None
    return Credentials(api_token=token, postgres=pg, nats=nats)


def find_api_token(data: DataDir, env: Mapping[str, str]) -> str | None:
    """The token the CLI sends: $WF_TOKEN, else board.token of the local config, else the data dir's."""
    if env.get("WF_TOKEN"):
        return env["WF_TOKEN"]
    from wf_cli.commands.common import local_config

    configured = local_config().board.token
    if configured is not None:
        return configured.get_secret_value()
    return read_secret(data.secrets / API_TOKEN_FILE)
