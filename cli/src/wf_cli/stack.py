"""The start/stop sequence of `wf start` (see wf_cli.start): servers, migrations, services, health.

run.json (in the data dir) is written as soon as the services run and again on every restart and
when the board turns healthy (`"status": "starting"` → `"up"`); it is removed on a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from wf_common.config import WorkflowConfig
from wf_common.errors import WorkflowError

from wf_cli.datadir import DataDir, read_run_file, remove_run_file, write_run_file
from wf_cli.embedded.ports import log_tail, port_is_free, url_host
from wf_cli.errors import CliError
from wf_cli.health import probe
from wf_cli.leftovers import stop_leftovers
from wf_cli.modelcheck import model_server_warnings
from wf_cli.servers import Servers
from wf_cli.supervisor import RestartPolicy, ServiceSpec, Supervisor
from wf_cli.text import clean, shorten
from wf_cli.topology import declare_topology
from wf_cli.url import board_login_url

log = logging.getLogger(__name__)

MIGRATE_TIMEOUT = 600.0
# Settings `wf start` decides per service; inherited values would only confuse a service.
# Secrets (WF_API_TOKEN, the CLI's WF_TOKEN) reach only the service that needs them.
_PER_SERVICE_ENV = ("WF_CONFIG", "WF_NATS_URL", "WF_DATABASE_URL", "WF_LOG_LEVEL", "WF_BOARD_PORT",
                    "WF_BOARD_HOST", "WF_RUNNER_ID", "WF_STAGES", "WF_API_TOKEN", "WF_TOKEN")  # fmt: skip


class StartupFailed(CliError):
    pass


class _Interrupted(Exception):
    """A stop was asked for while starting: not an error."""


class Stack:
    def __init__(
        self,
        config: WorkflowConfig,
        config_path: Path | None,
        data: DataDir,
        *,
        env: Mapping[str, str],
        port: int,
        echo: bool = True,
        health_timeout: float = 120.0,
        log_level: str = "INFO",
        policy: RestartPolicy | None = None,
        python: str = sys.executable,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.data = data
        self.env = dict(env)
        self.host = config.board.host
        self.port = port
        self.echo = echo
        self.health_timeout = health_timeout
        self.log_level = log_level.upper()
        self.policy = policy or RestartPolicy()
        self.python = python
        self.servers = Servers(data, config, self.env)
        self.supervisor: Supervisor | None = None
        self.status = "starting"
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._stop = asyncio.Event()
        self._signals = 0

    @property
    def board_url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def login_url(self) -> str:
        """The board URL with the API token: opening it signs the browser in (printed once)."""
        return board_login_url(self.board_url, self.servers.credentials.api_token)

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self._on_signal, sig)
        code = 0
        health: asyncio.Task[None] | None = None
        try:
            await self._start()
            health = asyncio.create_task(self._watch_health())
            await self._stop.wait()
        except _Interrupted:
            pass
        except (CliError, WorkflowError) as exc:
            log.error("%s", exc.message if isinstance(exc, CliError) else exc)  # noqa: TRY400 - a message for the user, no traceback
            code = 1
        except OSError as exc:  # e.g. a service cannot even be executed
            log.error("cannot start Workflow Hub: %s", exc)  # noqa: TRY400 - as above
            code = 1
        finally:
            if health is not None:
                health.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await health
            await self._shutdown()
        return code

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info(
                "%s received: stopping (press Ctrl-C again to kill the services at once)",
                signal.Signals(sig).name,
            )
            self._stop.set()
        elif self.supervisor is not None:
            log.warning("killing the services now")
            self.supervisor.kill_all()

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Interrupted

    async def _start(self) -> None:
        log.info("data directory %s", self.data.root)
        log.info("config %s", self.config_path or "built-in defaults (no ./config.yaml)")
        previous = read_run_file(self.data.run_file)
        if previous is not None:
            await asyncio.to_thread(stop_leftovers, previous)
            remove_run_file(self.data.run_file)
        if not port_is_free(self.port, self.host):
            raise StartupFailed(
                f"port {self.port} on {self.host} is already in use, so the board cannot listen there; "
                "stop what uses it or pass --port N"
            )
        await asyncio.to_thread(self.servers.start_nats)
        self._check_stop()
        await declare_topology(self.servers.nats_url_for("orchestrator"), self.config)
        self._check_stop()
        await asyncio.to_thread(self.servers.start_postgres)
        self._check_stop()
        await self._migrate()
        self._check_stop()
        await self._check_model_server()
        self.supervisor = Supervisor(
            self.service_specs(),
            self.policy,
            echo=self._echo if self.echo else None,
            on_change=self._write_run_file,
        )
        await self.supervisor.start()
        names = ", ".join(s.name for s in self.supervisor.services)
        log.info("started %s; logs in %s", names, self.data.logs)

    async def _shutdown(self) -> None:
        if self.supervisor is not None:
            log.info("stopping services")
            await self.supervisor.stop()
        try:
            await asyncio.to_thread(self.servers.stop)
        except WorkflowError as exc:
            log.error("%s", exc)  # noqa: TRY400 - as above
        remove_run_file(self.data.run_file)
        log.info("stopped")

    # ------------------------------------------------------------------ pieces

    def base_env(self, kind: str = "orchestrator") -> dict[str, str]:
        """Environment of a service of `kind` (wf_cli.credentials.NATS_KINDS): its own NATS login
        and database role; the orchestrator's (the database owner) unless told otherwise."""
        env = {k: v for k, v in self.env.items() if k not in _PER_SERVICE_ENV}
        if self.config_path is not None:
            env["WF_CONFIG"] = str(self.config_path)
        env["WF_NATS_URL"] = self.servers.nats_url_for(kind)
        database_url = self.servers.database_url_for(kind)
        if database_url is not None:
            env["WF_DATABASE_URL"] = database_url
        env["WF_LOG_LEVEL"] = self.log_level
        env["PYTHONUNBUFFERED"] = "1"  # log lines reach the log files as they happen
        return env

    def _orchestrator_specs(self, env: dict[str, str]) -> list[ServiceSpec]:
        """orchestrator.replicas processes: one active (it holds the lease), the others hot standbys."""
        replicas = self.config.orchestrator.replicas
        names = ["orchestrator"] + [f"orchestrator-{i}" for i in range(2, replicas + 1)]
        return [
            ServiceSpec(
                name, [self.python, "-m", "wf_orchestrator"], self.data.log(name), env,
                info={"role": "orchestrator"},
            )
            for name in names
        ]  # fmt: skip

    def service_specs(self) -> list[ServiceSpec]:
        env = self.base_env("orchestrator")
        runner_env = self.base_env("runner")
        runner = self.config.runner
        stages = runner.stages if isinstance(runner.stages, list) else self.config.pipeline.agent_stages
        specs = self._orchestrator_specs(env)
        for i in range(1, runner.count + 1):
            rid = f"runner-{i}"
            specs.append(ServiceSpec(
                rid, [self.python, "-m", "wf_agent_runner"], self.data.log(rid),
                {**runner_env, "WF_RUNNER_ID": rid, "WF_STAGES": ",".join(stages)},
                info={"role": "agent-runner", "runner_id": rid, "stages": list(stages)},
            ))  # fmt: skip
        specs.extend(self.sync_bridge_specs(self.base_env("sync-bridge")))
        specs.append(ServiceSpec(
            "board-api", [self.python, "-m", "wf_board_api"], self.data.log("board-api"),
            {**self.base_env("board"), "WF_BOARD_HOST": self.host, "WF_BOARD_PORT": str(self.port),
             "WF_API_TOKEN": self.servers.credentials.api_token},
            info={"role": "board-api", "url": self.board_url},
        ))  # fmt: skip
        return specs

    async def _check_model_server(self) -> None:
        for warning in await model_server_warnings(self.config):
            log.warning("%s", warning)

    def sync_bridge_specs(self, env: dict[str, str]) -> list[ServiceSpec]:
        """The sync bridge, when config.yaml mirrors tasks to trackers (task_backend.sync_to)."""
        if not self.config.task_backend.sync_to:
            return []
        names = [t.target_name for t in self.config.task_backend.sync_to]
        return [ServiceSpec(
            "sync-bridge", [self.python, "-m", "wf_sync_bridge"], self.data.log("sync-bridge"), env,
            info={"role": "sync-bridge", "targets": names},
        )]  # fmt: skip

    async def _migrate(self) -> None:
        log_file = self.data.log("migrate")
        offset = log_file.stat().st_size if log_file.exists() else 0
        argv = [self.python, "-m", "wf_orchestrator", "migrate"]
        log.info("running database migrations")
        with log_file.open("ab") as out:
            out.write(f"--- wf {datetime.now().astimezone():%Y-%m-%d %H:%M:%S}: {' '.join(argv)}\n".encode())
            out.flush()
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=self.base_env(),
                start_new_session=True,
            )  # fmt: skip
            waiter = asyncio.ensure_future(proc.wait())
            stopper = asyncio.ensure_future(self._stop.wait())
            done, _ = await asyncio.wait(
                {waiter, stopper}, timeout=MIGRATE_TIMEOUT, return_when="FIRST_COMPLETED"
            )
            stopper.cancel()
            if waiter not in done:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                await proc.wait()
                self._check_stop()
                raise StartupFailed(
                    f"database migrations did not finish within {MIGRATE_TIMEOUT:.0f}s ({log_file})"
                )
        if proc.returncode != 0:
            tail = log_tail(log_file, lines=20, start_offset=offset)
            raise StartupFailed(
                f"database migrations failed (exit code {proc.returncode}): {' '.join(argv)}\n"
                f"last lines of {log_file}:\n{tail}"
            )

    async def _watch_health(self) -> None:
        """Poll /health until it answers 200; say what fails if that takes longer than health_timeout."""
        url = f"{self.board_url}/health"
        deadline = time.monotonic() + self.health_timeout
        warned = False
        async with httpx.AsyncClient(trust_env=False) as client:
            while not self._stop.is_set():
                result = await probe(client, url)
                if result.ok:
                    self.status = "up"
                    self._write_run_file()
                    print(f"Workflow Hub is up at {self.board_url}", flush=True)
                    # Once, on the terminal only (not in wf.log), as Jupyter does; `wf url` repeats it.
                    print(f"Open the board (signs this browser in): {self.login_url}", flush=True)
                    return
                if not warned and time.monotonic() > deadline:
                    warned = True
                    log.warning(
                        "Workflow Hub is not healthy after %.0fs: %s%s. Still trying; Ctrl-C stops.",
                        self.health_timeout, result.detail, self._crash_report(),
                    )  # fmt: skip
                await asyncio.sleep(2.0 if warned else 0.3)

    def _crash_report(self) -> str:
        if self.supervisor is None:
            return ""
        troubled = [
            f"{s.name} exited {s.restarts + (0 if s.pid else 1)} time(s), last exit code {s.last_exit} "
            f"(see {s.spec.log_file})"
            for s in self.supervisor.services
            if s.last_exit is not None
        ]
        return ("; " + "; ".join(troubled)) if troubled else ""

    def _write_run_file(self) -> None:
        state: dict[str, Any] = {
            "pid": os.getpid(),
            "status": self.status,
            "started_at": self.started_at,
            "data_dir": str(self.data.root),
            "config": str(self.config_path) if self.config_path else None,
            "board": {"url": self.board_url, "host": self.host, "port": self.port},
            **self.servers.state(),
            "services": self.supervisor.state() if self.supervisor else {},
            "logs": str(self.data.logs),
        }
        try:
            write_run_file(self.data.run_file, state)
        except OSError as exc:
            log.warning("could not write %s: %s", self.data.run_file, exc)

    def _echo(self, name: str, line: str) -> None:
        text = shorten(clean(line, oneline=True), 200)
        if text:
            print(f"{name:>12} | {text}", flush=True)
