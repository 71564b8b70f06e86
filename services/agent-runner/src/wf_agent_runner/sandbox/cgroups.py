"""Control groups: limits for bubblewrap sandboxes, and the counters that say which limit was hit.

Used where the runner may write them (cgroup v1 hierarchies, or a v2 subtree delegated to it with the
memory and pids controllers enabled); elsewhere bubblewrap falls back to `prlimit`. The counters
(`oom_kill`, pids `max`) are read the same way for docker containers, whose cgroups the engine made.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "freezer")


def _own_paths() -> dict[str, str]:
    """controller -> this process's cgroup path ('' key: the v2 unified one)."""
    paths: dict[str, str] = {}
    try:
        text = Path("/proc/self/cgroup").read_text(encoding="ascii")
    except OSError:
        return paths
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path
    return paths


def _read_counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return 0
    return 0


class Counters:
    """The files where a cgroup counts OOM kills and refused forks."""

    def __init__(self, oom: Path | None, pids: Path | None) -> None:
        self.oom = oom
        self.pids = pids

    def read(self) -> tuple[int, int]:
        oom = _read_counter(self.oom, "oom_kill") if self.oom else 0
        pids = _read_counter(self.pids, "max") if self.pids else 0
        return oom, pids

    @property
    def available(self) -> bool:
        return self.oom is not None or self.pids is not None


def docker_counters(container_id: str) -> Counters:
    """Counters of a container's cgroup, wherever the engine's cgroup driver put it (or none)."""
    own = _own_paths()
    v1_bases = [f"/docker/{container_id}", f"/system.slice/docker-{container_id}.scope"]
    oom = pids = None
    for base in v1_bases:
        for ctl, fname in (("memory", "memory.oom_control"), ("pids", "pids.events")):
            for prefix in {"", own.get(ctl, "")}:
                p = ROOT / ctl / prefix.lstrip("/") / base.lstrip("/") / fname
                if p.exists():
                    oom = p if ctl == "memory" else oom
                    pids = p if ctl == "pids" else pids
    if oom or pids:
        return Counters(oom, pids)
    for base in v1_bases:
        d = ROOT / base.lstrip("/")
        if (d / "memory.events").exists() or (d / "pids.events").exists():
            return Counters(d / "memory.events", d / "pids.events")
    return Counters(None, None)


class SandboxCgroup:
    """Cgroups made for one bubblewrap run: memory and pids limits, freezer, kill-all, remove."""

    def __init__(self, dirs: dict[str, Path], v2: bool) -> None:
        self.dirs = dirs
        self.v2 = v2
        if v2:
            d = dirs[""]
            self.counters = Counters(d / "memory.events", d / "pids.events")
        else:
            self.counters = Counters(
                dirs["memory"] / "memory.oom_control" if "memory" in dirs else None,
                dirs["pids"] / "pids.events" if "pids" in dirs else None,
            )

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs.values()]

    @classmethod
    def create(cls, name: str, memory_bytes: int, pids: int) -> SandboxCgroup | None:
        """New cgroups under this process's own, or None where they cannot be made (not allowed)."""
        own = _own_paths()
        made: dict[str, Path] = {}
        try:
            if (ROOT / "memory").is_dir() and (ROOT / "pids").is_dir():  # cgroup v1
                for ctl in V1_CONTROLLERS:
                    base = ROOT / ctl / own.get(ctl, "/").lstrip("/")
                    if not base.is_dir():
                        continue
                    d = base / name
                    d.mkdir()
                    made[ctl] = d
                (made["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):  # absent without swap accounting
                    (made["memory"] / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
                (made["pids"] / "pids.max").write_text(str(pids))
                return cls(made, v2=False)
            base = ROOT / own.get("", "/").lstrip("/")
            enabled = (base / "cgroup.subtree_control").read_text().split()
            if "memory" not in enabled or "pids" not in enabled:
                return None
            d = base / name
            d.mkdir()
            made[""] = d
            (d / "memory.max").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):
                (d / "memory.swap.max").write_text("0")
            (d / "pids.max").write_text(str(pids))
            return cls(made, v2=True)
        except (OSError, KeyError):
            cls(made, v2="" in made).remove()
            return None

    def pids(self) -> list[int]:
        found: set[int] = set()
        for f in self.procs_files:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in f.read_text().split())
        return sorted(found)

    def set_frozen(self, frozen: bool) -> bool:
        """Freeze or thaw; False where there is no freezer (the caller signals instead)."""
        try:
            if self.v2:
                (self.dirs[""] / "cgroup.freeze").write_text("1" if frozen else "0")
                return True
            if "freezer" in self.dirs:
                (self.dirs["freezer"] / "freezer.state").write_text("FROZEN" if frozen else "THAWED")
                return True
        except OSError:
            return False
        return False

    def kill_all(self) -> None:
        if self.v2:
            with contextlib.suppress(OSError):
                (self.dirs[""] / "cgroup.kill").write_text("1")
        self.set_frozen(False)  # a frozen process cannot die
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                d.rmdir()  # only once empty: the kernel refuses while processes remain
