"""Backend `bubblewrap`: each command in fresh Linux namespaces (`bwrap`).

The system directories are bound read-only, the worktree read-write at /workspace, /tmp (with HOME
under it) is a fresh tmpfs, and the root is remounted read-only, so nothing outside the workspace can
be written. New user, pid, net, ipc and uts namespaces: no network (unless the project opts in), no
view of host processes, and when the command's main process ends the pid namespace ends with it,
taking every background process along. All capabilities are dropped. Limits: cgroups (memory, pids,
and the freezer for pause) where the runner may create them, else `prlimit` (address space, processes).
Only a few files of /etc are visible (no shadow, no host credentials), and nothing of the user's home.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from pathlib import Path

from wf_common.config import SandboxConfig

from wf_agent_runner.sandbox.base import MEMORY, PATH, PIDS, SANDBOX_HOME, WORKDIR, RunOutcome, sandbox_env
from wf_agent_runner.sandbox.cgroups import SandboxCgroup
from wf_agent_runner.sandbox.gitdirs import GitView
from wf_agent_runner.sandbox.process import ProcessSandbox

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
ETC_FILES = (
    "passwd", "group", "hosts", "nsswitch.conf", "host.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
    "alternatives", "ssl", "ca-certificates", "localtime", "timezone", "mime.types", "gitconfig",
    "python3", "python3.11", "os-release", "debian_version", "protocols", "services",
    "chromium.d", "chromium", "fonts",  # Debian's Chromium (E2E tests) reads these
)  # fmt: skip
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`)"
)
# Wrapper run on the host before bwrap: it joins the run's cgroups, then becomes bwrap. Fixed text;
# the command is only ever an argument of bwrap's inner /bin/sh.
JOIN_CGROUPS = 'IFS=:; for f in $WF_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; exec "$@"'


def available() -> bool:
    return shutil.which("bwrap") is not None


def _nproc_in_use() -> int:
    uid = os.getuid()
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    n += 1
    return n


class BubblewrapSandbox(ProcessSandbox):
    backend = "bubblewrap"

    def __init__(self, config: SandboxConfig, worktree: Path, *, network: bool = False) -> None:
        super().__init__(config, worktree)
        self.network = network
        self.bwrap = shutil.which("bwrap") or "bwrap"
        self.prlimit = shutil.which("prlimit")
        self._cgroup: SandboxCgroup | None = None
        self._no_cgroup = False
        self._before = (0, 0)
        self._git = GitView(worktree)

    def cwd(self) -> Path:
        return Path("/")

    def env(self) -> dict[str, str]:
        # The outer environment only reaches the wrapper; --clearenv gives the command its own.
        return {"PATH": os.environ.get("PATH", PATH), "WF_CGROUP_PROCS": self._procs}

    def argv(self, command: str) -> list[str]:
        args = [self.bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if not self.network:
            args.append("--unshare-net")
        for d in SYSTEM_DIRS:
            if os.path.islink(d):
                args += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                args += ["--ro-bind", d, d]
        args += ["--ro-bind", str(self._etc()), "/etc"]
        # /tmp first: a bind below it (tools or extra paths under /tmp) made before the tmpfs is hidden.
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", SANDBOX_HOME]  # noqa: S108
        for extra in self.config.bubblewrap_ro_paths:
            args += ["--ro-bind-try", extra, extra]
        path = PATH
        if tools := self.config.tools_dir:
            args += ["--ro-bind-try", tools, tools]
            path = f"{tools}/bin:{PATH}"
        args += ["--bind", str(self.worktree), WORKDIR]
        for bind in self._git.binds():
            # Commands can read the repository but not plant hooks or config the runner's git would
            # run, nor read the secrets its config may hold (its config files are safe copies).
            args += ["--ro-bind", str(bind.host), bind.inside]
        args += ["--chdir", WORKDIR, "--remount-ro", "/"]
        args.append("--clearenv")
        for k, v in sandbox_env(path=path).items():
            args += ["--setenv", k, v]
        return [*args, "/bin/sh", "-c", command]

    _procs = ""
    _etc_dir: Path | None = None

    def _etc(self) -> Path:
        """A copy of the few /etc files a command needs, made once per sandbox: one bind mount
        instead of one per file (each costs about a millisecond), and nothing else of /etc."""
        if self._etc_dir is None:
            etc = self.home.parent / f"{self.home.name}-etc"
            etc.mkdir(exist_ok=True)
            for name in ETC_FILES:
                src = Path("/etc") / name
                with contextlib.suppress(OSError):
                    if src.is_dir() and not src.is_symlink():
                        shutil.copytree(src, etc / name, symlinks=True, dirs_exist_ok=True)
                    elif src.exists():
                        shutil.copy2(src, etc / name, follow_symlinks=not src.is_symlink())
            self._etc_dir = etc
        return self._etc_dir

    async def before_run(self, run_id: str) -> list[str]:
        # One set of cgroups for the job's sandbox, made on its first command: every run joins it,
        # and whatever a run leaves in it is killed when the run ends.
        if self._cgroup is None and not self._no_cgroup:
            mem = self.config.memory_mb * 1024 * 1024
            name = f"wf-sandbox-{os.getpid()}-{id(self):x}"
            self._cgroup = await asyncio.to_thread(SandboxCgroup.create, name, mem, self.config.pids)
            self._no_cgroup = self._cgroup is None
        cg = self._cgroup
        if cg is not None:
            self._before = cg.counters.read()
            self._procs = ":".join(str(p) for p in cg.procs_files)
            return ["/bin/sh", "-c", JOIN_CGROUPS, "wf-sandbox"]
        self._procs = ""
        if self.prlimit:
            # No cgroups here: per-process limits. RLIMIT_NPROC counts all of the user's processes.
            mem = self.config.memory_mb * 1024 * 1024
            nproc = _nproc_in_use() + self.config.pids
            return [self.prlimit, f"--as={mem}", f"--nproc={nproc}", "--core=0", "--"]
        return []

    def kill_run(self, run_id: str, proc: asyncio.subprocess.Process) -> None:
        super().kill_run(run_id, proc)
        if self._cgroup is not None:
            self._cgroup.kill_all()

    async def after_run(self, run_id: str, outcome: RunOutcome) -> RunOutcome:
        cg = self._cgroup
        hit, detail = outcome.limit_hit, outcome.detail
        if cg is not None:
            oom, pids = cg.counters.read()
            if oom > self._before[0]:
                hit, detail = MEMORY, f"out of memory: the {self.config.memory_mb} MB limit"
            elif pids > self._before[1]:  # the cause, even when the bomb then ran out of time
                hit, detail = PIDS, f"process limit of {self.config.pids} reached (fork refused)"
        elif hit is None and outcome.exit_code not in (0, None):
            # prlimit only: the kernel refuses the allocation or the fork; the command says so.
            text = outcome.stderr + outcome.stdout
            if "MemoryError" in text or "Cannot allocate memory" in text:
                hit, detail = MEMORY, f"address-space limit of {self.config.memory_mb} MB (prlimit)"
            elif "Resource temporarily unavailable" in text or "fork" in text.lower():
                hit, detail = PIDS, f"process limit (prlimit) of {self.config.pids} more processes"
        if (hit, detail) == (outcome.limit_hit, outcome.detail):
            return outcome
        return RunOutcome(
            outcome.exit_code, outcome.stdout, outcome.stderr, outcome.truncated, hit, outcome.duration_ms,
            detail,
        )  # fmt: skip

    async def freeze(self) -> None:
        self._frozen = True
        if self._cgroup is None or not self._cgroup.set_frozen(True):
            for proc in list(self._running):
                self.signal_tree(proc, signal.SIGSTOP)

    async def thaw(self) -> None:
        self._frozen = False
        if self._cgroup is not None:
            self._cgroup.set_frozen(False)
        for proc in list(self._running):
            self.signal_tree(proc, signal.SIGCONT)

    async def close(self) -> None:
        if self._cgroup is not None:
            self._cgroup.kill_all()
        await super().close()
        if self._etc_dir is not None:
            shutil.rmtree(self._etc_dir, ignore_errors=True)
        self._git.close()
        if self._cgroup is not None:
            await _removed(self._cgroup)


async def _removed(cg: SandboxCgroup) -> None:
    """Remove the run's cgroups once the kernel has reaped its processes (bounded wait)."""
    for _ in range(50):
        cg.remove()
        if not any(d.exists() for d in cg.dirs.values()):
            return
        cg.kill_all()
        await asyncio.sleep(0.02)
