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
)
from wf_agent_runner.sandbox.cgroups import Counters, docker_counters
from wf_agent_runner.sandbox.channel import ChannelBroken, HelperChannel
from wf_agent_runner.sandbox.gitdirs import GitView

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


def client() -> Any:
    """A docker SDK client from the environment (DOCKER_HOST), or SandboxError."""
    import docker  # the SDK is imported only where the docker backend is used
    from docker.errors import DockerException

    _reachable(os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    try:
        c = docker.from_env(timeout=30)
    except DockerException as err:
        raise SandboxError(f"no Docker engine answers ({err}); {INSTALL_HINT}") from None
    try:
        c.ping()
    except DockerException as err:
        c.close()  # its connection pool holds the socket that failed
        raise SandboxError(f"no Docker engine answers ({err}); {INSTALL_HINT}") from None
    return c


def _reachable(host: str) -> None:
    """For a unix socket, connect once ourselves: the SDK leaves the socket of a failed connect open."""
    if not host.startswith("unix://"):
        return
    path = host.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError as err:
            raise SandboxError(f"no Docker engine answers at {host} ({err}); {INSTALL_HINT}") from None


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
        self._channel: HelperChannel | None = None
        self._counters = Counters(None, None)
        self._counted = (0, 0)
        self._closed = False
        self._lock = asyncio.Lock()
        self._git = GitView(worktree)

    # -- the container ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create and start the job's container (done by open_sandbox: the cold start)."""
        if self._docker is None:
            self._docker = await asyncio.to_thread(client)
        await asyncio.to_thread(self._start_container)
        try:
            self._channel = await HelperChannel.open(self._docker.api, self._container.id, self.user)
        except ChannelBroken as e:
            log.warning("%s; each command is its own Docker exec (slower)", e)
            self._channel = None

    def _start_container(self) -> None:
        from docker.errors import DockerException, ImageNotFound
        from docker.types import Mount

        uid, gid = self.user.split(":")
        network = self._network()
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
                mounts=[
                    Mount(WORKDIR, str(self.worktree), type="bind", read_only=False),
                    *(Mount(b.inside, str(b.host), type="bind", read_only=True) for b in self._git.binds()),
                ],
                environment=sandbox_env(),
                network_mode=network,
                mem_limit=f"{self.config.memory_mb}m",
                memswap_limit=f"{self.config.memory_mb}m",
                nano_cpus=int(self.config.cpus * 1e9),
                pids_limit=self.config.pids,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                ipc_mode="private",
                labels=self.labels,
                hostname=None if network == "host" else "sandbox",  # host: the engine refuses one
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

    def _network(self) -> str:
        """`none`, or for a project that opted in the configured engine network, which must exist: an
        engine without it (e.g. dockerd --bridge=none has no `bridge`) would silently give no network."""
        from docker.errors import DockerException, NotFound

        if not self.network:
            return "none"
        name = self.config.docker_network
        try:
            self._docker.networks.get(name)
        except NotFound:
            project = self.labels.get("wf.project", "?")
            raise SandboxError(
                f"project {project!r} opts into network access (sandbox.projects.{project}.network: true) "
                f"but the Docker engine has no network {name!r} (a dockerd started with --bridge=none has "
                "no `bridge`); set sandbox.docker_network to one it has (`docker network ls`; `host` "
                "shares this machine's network), or turn the project's network off"
            ) from None
        except DockerException as err:
            raise SandboxError(f"could not look up the Docker network {name!r}: {err}") from None
        return name

    async def _reset(self) -> None:
        """Remove the container (and its helper); the next command starts a fresh one."""
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()  # a run waiting on the helper ends now
        await asyncio.to_thread(self._kill_container)

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
        out, err = self.captures(on_line)
        started = time.monotonic()
        if self._channel is not None and not self._channel.broken:
            code, limit_hit, detail, lingering, reset = await self._exec_helper(command, timeout, out, err)
        else:
            code, limit_hit, detail, lingering = await self._exec_api(command, timeout, out, err)
            # Whatever it left running must not share the container with the next command.
            reset = lingering or limit_hit == TIMEOUT
        await out.finish()
        await err.finish()
        oom, pids = self._counters.read()
        if oom > self._counted[0]:
            limit_hit, detail = MEMORY, f"out of memory: the {self.config.memory_mb} MB limit"
        elif pids > self._counted[1]:  # the cause, even when the bomb then ran out of time
            limit_hit, detail = PIDS, f"process limit of {self.config.pids} reached (fork refused)"
            reset = True  # a bomb may still be forking: start afresh
        self._counted = (oom, pids)
        if lingering and limit_hit is None:
            detail = "the command left background processes running; they were stopped"
        if reset:
            await self._reset()
            detail += "; the sandbox was reset" if limit_hit else ""
        return RunOutcome.captured(code, out, err, started=started, limit_hit=limit_hit, detail=detail)

    async def _exec_helper(
        self,
        command: str,
        timeout: float,  # noqa: ASYNC109 - see run()
        out: StreamCapture,
        err: StreamCapture,
    ) -> tuple[int | None, str | None, str, bool, bool]:
        """A command through the container's helper: (exit code, limit hit, detail, left background
        processes, the container must be replaced)."""
        channel = self._channel
        if channel is None:
            raise SandboxError("the sandbox's command helper is not running")
        try:
            finished, timed_out = await channel.run(command, timeout, out, err)
        except ChannelBroken as e:
            log.warning("sandbox command helper failed (%s); the container is replaced", e)
            return None, None, f"the sandbox failed ({e}) and was reset", False, True
        if timed_out:
            return None, TIMEOUT, f"killed after {timeout:g}s", False, finished.left > 0
        if finished.error:
            return None, None, f"the command could not start: {finished.error}", False, finished.left > 0
        return finished.code, None, "", finished.strays > 0, finished.left > 0

    async def _exec_api(
        self,
        command: str,
        timeout: float,  # noqa: ASYNC109 - see run()
        out: StreamCapture,
        err: StreamCapture,
    ) -> tuple[int | None, str | None, str, bool]:
        """A command as its own Docker exec (images without python3 for the helper): (exit code,
        limit hit, detail, left background processes holding its output)."""
        api = self._docker.api
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
        code: int | None = None
        if limit_hit is None:
            info = await asyncio.to_thread(api.exec_inspect, exec_id)
            code = info.get("ExitCode")
        return code, limit_hit, detail, lingering

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
        await self._reset()
        self._git.close()
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
