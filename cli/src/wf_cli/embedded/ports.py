"""Small helpers shared by the embedded servers: free TCP ports, log tails and the error type."""

from __future__ import annotations

import socket
from pathlib import Path

from wf_common.errors import WorkflowError


class EmbeddedServerError(WorkflowError):
    """An embedded server (NATS or PostgreSQL) could not be started, reached or stopped.

    The message says which server, what was tried and ends with the tail of the server's log.
    """


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now (the OS picks it).

    Another process may grab it before the caller binds it; callers that pick ports themselves
    retry with a new port when the server reports "address already in use".
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could bind `host:port` now (no listener there).

    SO_REUSEADDR mirrors what nats-server and postgres do, so a port whose last connections
    are still in TIME_WAIT counts as free.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts_connections(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((connect_host(host), port), timeout=timeout):
            return True
    except OSError:
        return False


def connect_host(host: str) -> str:
    """The address a local client uses to reach a server bound to `host` (wildcards -> loopback)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - recognising the wildcard, not binding to it
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def url_host(host: str) -> str:
    """`connect_host(host)` written for a URL (IPv6 literals in brackets)."""
    h = connect_host(host)
    return f"[{h}]" if ":" in h else h


def log_tail(path: Path, *, lines: int = 40, start_offset: int = 0) -> str:
    """The last `lines` lines of a log file from byte `start_offset` on (so only this run's lines)."""
    try:
        with path.open("rb") as f:
            f.seek(start_offset)
            data = f.read()
    except OSError as exc:
        return f"(could not read log {path}: {exc})"
    text = data.decode("utf-8", errors="replace").rstrip()
    if not text:
        return f"(log {path} is empty)"
    return "\n".join(text.splitlines()[-lines:])


def file_size(path: Path) -> int:
    """Size of a file in bytes, 0 if it does not exist."""
    try:
        return path.stat().st_size
    except OSError:
        return 0
