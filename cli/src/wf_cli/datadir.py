"""The data directory of `wf start`: its layout, the one-instance lock and run.json.

    <data dir>/
      nats/            JetStream store (streams survive restarts)
      postgres/        PostgreSQL cluster (pgdata)
      logs/<name>.log  one log per service, plus wf.log (the supervisor) and migrate.log
      secrets/         0700: the API token and the servers' passwords, one 0600 file each
                       (wf_cli.credentials)
      wf.lock          held (flock) by the running `wf start`; holds its pid
      run.json         pids, URLs and ports of the running stack; removed on a clean stop

The lock is an advisory `flock` on wf.lock, not the file's existence: the kernel drops it when the
holder dies however it dies, so a lock left by a crashed `wf start` is simply taken over, and a pid
that was reused by another program can never keep the data dir locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from wf_cli.errors import CliError

RUN_FILE_VERSION = 1


def default_data_dir() -> Path:
    """$WF_DATA_DIR, else the platform's per-user data directory (~/.local/share/workflow-hub)."""
    chosen = os.environ.get("WF_DATA_DIR")
    return Path(chosen) if chosen else Path(platformdirs.user_data_dir("workflow-hub"))


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def nats(self) -> Path:
        return self.root / "nats"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def lock_file(self) -> Path:
        return self.root / "wf.lock"

    @property
    def run_file(self) -> Path:
        return self.root / "run.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def prepare(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.logs.mkdir(exist_ok=True)
        except OSError as exc:
            raise CliError(f"cannot use data directory {self.root}: {exc.strerror or exc}") from None


class AlreadyRunning(CliError):
    def __init__(self, root: Path, pid: int | None) -> None:
        who = f" (pid {pid})" if pid else ""
        super().__init__(
            f"Workflow Hub is already running on {root}{who}; stop it first (Ctrl-C in its terminal, "
            f"or kill {pid or '<pid>'}), or use another --data-dir"
        )
        self.pid = pid


class InstanceLock:
    """At most one `wf start` per data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.previous_pid: int | None = None  # pid left in the file by a run that did not stop cleanly

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(self.path.parent, pid) from None
        self.previous_pid = _read_pid(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        # The file stays: unlinking it would let a process that opened it just before lock an
        # orphaned inode while a third one locks a new file. An empty file means "not running".
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


def write_run_file(path: Path, data: dict[str, Any]) -> None:
    """Replace run.json atomically, so a reader never sees half a file."""
    body = json.dumps({"version": RUN_FILE_VERSION, **data}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".run.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(body)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_run_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_run_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
