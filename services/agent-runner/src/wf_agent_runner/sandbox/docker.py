"""Backend `docker`: one container per job, kept warm for the job's life; each command is an exec.

The container runs as the workspace owner's uid/gid with the worktree bind-mounted read-write at
/workspace, a read-only root filesystem, a small tmpfs /tmp holding a fresh HOME, no network unless
the project opts in, memory/CPU/pids limits, every capability dropped, no-new-privileges and the
engine's default seccomp profile. Its main process is `sleep <lifetime>` under the engine's init,
and it is started with auto-remove: even if the runner dies, the container ends by itself after the
job's time limit. Labels (`wf.project`, `wf.task`, `wf.execution`, `wf.runner`, plus the runner's
host and pid) let a restarted runner find and remove what it left behind. The engine's socket is
never mounted into it.

A command that runs out of time, or fork-bombs the pids limit, gets the container replaced (killed
and started afresh before the next command), so nothing it left running can interfere later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

from wf_common.config import SandboxConfig

from wf_agent_runner.sandbox.base import (
    MEMORY,
    PIDS,
    SANDBOX_HOME,
    TIMEOUT,
    WORKDIR,
    LineCallback,
    RunOutcome,
    Sandbox,
    SandboxError,
    StreamCapture,
    sandbox_env,
    truncation_note,
)
from wf_agent_runner.sandbox.cgroups import Counters, docker_counters

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install Docker (Debian/Ubuntu: `apt-get install docker.io`) and make sure `docker info` works for "
    "the runner's user (or set DOCKER_HOST)"
)
EXIT_POLL_SECONDS = 0.25  # how often a run checks whether its command ended while output stays open
EXIT_GRACE_SECONDS = 0.3  # after it ended, how long a background process may keep the pipes open
LABEL_HOST = "wf.host"
TMP = "/tmp"  # noqa: S108 - the container's own tmpfs
LABEL_PID = "wf.pid"
LABEL_RUNNER = "wf.runner"


def _unix_socket_refusal() -> str | None:
    """Why the engine's unix socket (DOCKER_HOST unix://…, or the default) takes no connection, or None.

    Probed here with a socket closed on every path before the SDK tries: the SDK leaves the socket of
    a refused connect to the garbage collector, which then warns (ResourceWarning) wherever it runs.
    """
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        return None
    path = host.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError as err:
            return f"{path}: {err.strerror or err}"
    return None


def client() -> Any:
    """A docker SDK client from the environment (DOCKER_HOST), or SandboxError."""
    import docker  # the SDK is imported only where the docker backend is used
    from docker.errors import DockerException

    refusal = _unix_socket_refusal()
    if refusal is not None:
        raise SandboxError(f"no Docker engine answers ({refusal}); {INSTALL_HINT}")
    try:
        c = docker.from_env(timeout=30)
        c.ping()
    except DockerException as err:
        raise SandboxError(f"no Docker engine answers ({err}); {INSTALL_HINT}") from None
    return c


def engine_answers() -> bool:
    try:
        client().close()
    except SandboxError:
        return False
    return True


class DockerSandbox(Sandbox):
    backend = "docker"

    def __init__(
        self,
        config: SandboxConfig,
        worktree: Path,
        labels: dict[str, str],
        *,
        image: str,
        network: bool,
        lifetime: float,
    ) -> None:
        super().__init__(config.output_limit_chars)
        self.config = config
        self.worktree = worktree
        self.labels = {
            **labels,
            LABEL_HOST: socket.gethostname(),
            LABEL_PID: str(os.getpid()),
        }
        self.image = image
        self.network = network
        self.lifetime = lifetime
        st = worktree.stat()
        self.user = f"{st.st_uid}:{st.st_gid}"
        self._docker: Any = None
        self._container: Any = None
        self._counters = Counters(None, None)
        self._counted = (0, 0)
        self._closed = False
        self._lock = asyncio.Lock()

    # -- the container ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create and start the job's container (done by open_sandbox: the cold start)."""
        if self._docker is None:
            self._docker = await asyncio.to_thread(client)
        await asyncio.to_thread(self._start_container)

    def _start_container(self) -> None:
        from docker.errors import DockerException, ImageNotFound
        from docker.types import Mount

        uid, gid = self.user.split(":")
        try:
            self._container = self._docker.containers.run(
                self.image,
                ["/bin/sh", "-c", f"mkdir -p {SANDBOX_HOME} && exec sleep {int(self.lifetime) + 60}"],
                detach=True,
                auto_remove=True,
                init=True,
                user=self.user,
                working_dir=WORKDIR,
                read_only=True,
                tmpfs={TMP: f"rw,nosuid,nodev,size={self.config.tmp_mb}m,uid={uid},gid={gid},mode=1777"},
                mounts=[Mount(WORKDIR, str(self.worktree), type="bind", read_only=False)],
                environment=sandbox_env(),
                network_mode="bridge" if self.network else "none",
                mem_limit=f"{self.config.memory_mb}m",
                memswap_limit=f"{self.config.memory_mb}m",
                nano_cpus=int(self.config.cpus * 1e9),
                pids_limit=self.config.pids,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                ipc_mode="private",
                labels=self.labels,
                hostname="sandbox",
            )
        except ImageNotFound:
            raise SandboxError(
                f"the sandbox image {self.image!r} is not there; build it with `wf sandbox build` "
                "(or set sandbox.image / the project's image)"
            ) from None
        except DockerException as err:
            raise SandboxError(f"could not start the sandbox container: {err}") from None
        self._counters = docker_counters(self._container.id)
        self._counted = self._counters.read()

    def _kill_container(self) -> None:
        from docker.errors import DockerException

        container, self._container = self._container, None
        if container is None:
            return
        with contextlib.suppress(DockerException):
            container.remove(force=True)

    # -- the contract ----------------------------------------------------------------------------

    async def run(
        self,
        command: str,
        timeout: float,  # noqa: ASYNC109 - the contract: the limit kills the command
        on_line: LineCallback | None = None,
    ) -> RunOutcome:
        async with self._lock:
            if self._closed:
                return RunOutcome(None, "", "the sandbox is closed")
            if self._container is None:
                await self.start()
            return await self._exec(command, timeout, on_line)

    async def _exec(
        self,
        command: str,
        timeout: float,  # noqa: ASYNC109 - see run()
        on_line: LineCallback | None,
    ) -> RunOutcome:
        api = self._docker.api
        out, err = self.captures(on_line)
        started = time.monotonic()
        exec_id = (
            await asyncio.to_thread(
                api.exec_create,
                self._container.id,
                ["/bin/sh", "-c", command],
                stdout=True,
                stderr=True,
                stdin=False,
                workdir=WORKDIR,
                environment={**sandbox_env(), "HOME": SANDBOX_HOME},
                user=self.user,
            )
        )["Id"]
        sock = await asyncio.to_thread(api.exec_start, exec_id, socket=True)
        raw: socket.socket = sock._sock
        limit_hit: str | None = None
        detail = ""
        lingering = False
        try:
            async with asyncio.timeout(timeout):
                lingering = await self._read(raw, exec_id, out, err)
        except TimeoutError:
            limit_hit, detail = TIMEOUT, f"killed after {timeout:g}s"
        finally:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                raw.close()
            with contextlib.suppress(OSError):
                sock.close()
        await out.finish()
        await err.finish()
        code: int | None = None
        if limit_hit is None:
            info = await asyncio.to_thread(api.exec_inspect, exec_id)
            code = info.get("ExitCode")
        oom, pids = self._counters.read()
        if oom > self._counted[0]:
            limit_hit, detail = MEMORY, f"out of memory: the {self.config.memory_mb} MB limit"
        elif pids > self._counted[1]:  # the cause, even when the bomb then ran out of time
            limit_hit, detail = PIDS, f"process limit of {self.config.pids} reached (fork refused)"
        self._counted = (oom, pids)
        if lingering and limit_hit is None:
            detail = "the command left background processes running; they were stopped"
        if limit_hit in (TIMEOUT, PIDS) or lingering:
            # Whatever it left running must not share the container with the next command.
            await asyncio.to_thread(self._kill_container)
            detail += "; the sandbox was reset" if limit_hit else ""
        return RunOutcome(
            code,
            out.text(),
            err.text(),
            truncated=truncation_note(out, err),
            limit_hit=limit_hit,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            detail=detail,
        )

    async def _read(self, raw: socket.socket, exec_id: str, out: StreamCapture, err: StreamCapture) -> bool:
        """Demultiplex the exec's stream (8-byte frame headers) until it closes (False), or until the
        command has ended and a background process keeps it open past the grace period (True)."""
        loop = asyncio.get_running_loop()
        raw.setblocking(False)
        ended = asyncio.Event()
        watcher = asyncio.create_task(self._watch_exit(exec_id, ended))
        ended_wait = asyncio.create_task(ended.wait())
        buf = b""
        recv: asyncio.Future[bytes] | None = None
        try:
            while True:
                recv = asyncio.ensure_future(loop.sock_recv(raw, 65536))
                await asyncio.wait([recv, ended_wait], return_when=asyncio.FIRST_COMPLETED)
                if not recv.done():
                    # The command ended; a background process may hold the stream open: drain briefly.
                    done, _ = await asyncio.wait([recv], timeout=EXIT_GRACE_SECONDS)
                    if not done:
                        return True
                data = recv.result()
                recv = None
                if not data:
                    return False
                buf += data
                while len(buf) >= 8:
                    kind, size = struct.unpack(">BxxxL", buf[:8])
                    if len(buf) < 8 + size:
                        break
                    payload, buf = buf[8 : 8 + size], buf[8 + size :]
                    await (err if kind == 2 else out).feed(payload)
        finally:
            for t in (watcher, ended_wait, recv):
                if t is not None:
                    t.cancel()

    async def _watch_exit(self, exec_id: str, ended: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(EXIT_POLL_SECONDS)
            info = await asyncio.to_thread(self._docker.api.exec_inspect, exec_id)
            if not info.get("Running"):
                ended.set()
                return

    async def freeze(self) -> None:
        if self._container is not None:
            await asyncio.to_thread(self._container.pause)

    async def thaw(self) -> None:
        if self._container is not None:
            await asyncio.to_thread(self._container.unpause)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._kill_container)
        if self._docker is not None:
            await asyncio.to_thread(self._docker.close)


def remove_leftovers(runner_id: str) -> int:
    """Remove sandbox containers of this runner id, or of a runner on this host that is gone."""
    from docker.errors import DockerException

    c = client()
    removed = 0
    try:
        mine_here = {"label": f"{LABEL_HOST}={socket.gethostname()}"}
        for container in c.containers.list(all=True, filters=mine_here):
            labels = container.labels or {}
            pid = labels.get(LABEL_PID, "")
            mine = labels.get(LABEL_RUNNER) == runner_id and pid != str(os.getpid())
            gone = pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid))
            if mine or gone:
                with contextlib.suppress(DockerException):
                    container.remove(force=True)
                    removed += 1
    finally:
        c.close()
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
