"""Services left running by a `wf start` that died without stopping them.

On Linux the services get SIGTERM when the supervisor dies (see supervisor._die_with_parent), so this
is a second line of defence, and the only one elsewhere. A run.json still present at start means the
last run did not stop cleanly; each service it lists that still runs the very same command line is
stopped before anything new starts (it would hold the board's port and consume jobs twice).
NATS and PostgreSQL handle their own leftovers (pid files in their directories).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def command_line(pid: int) -> list[str] | None:
    """The argv of a running process (Linux /proc), or None if gone or unknown."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] or None


def stop_leftovers(previous_run: dict[str, Any], timeout: float = 10.0) -> list[str]:
    """Stop the services of `previous_run` (a run.json) that still run; the names of those stopped."""
    services = previous_run.get("services")
    if not isinstance(services, dict):
        return []
    found: dict[str, int] = {}
    for name, svc in services.items():
        if not isinstance(svc, dict) or not isinstance(svc.get("pid"), int) or svc["pid"] == os.getpid():
            continue
        argv = svc.get("argv")
        if argv and command_line(svc["pid"]) == argv:
            found[name] = svc["pid"]
    for name, pid in found.items():
        log.warning("stopping %s (pid %s), left running by an earlier wf start", name, pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while found and time.monotonic() < deadline and any(_alive(p) for p in found.values()):
        time.sleep(0.1)
    for pid in found.values():
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return list(found)


def _alive(pid: int) -> bool:
    # An orphan is reaped by init, so "gone from /proc" is the test; a zombie still has a cmdline
    # of length zero, which command_line() reports as None.
    return command_line(pid) is not None
