"""The command helper that runs *inside* a docker sandbox (not on the host): started once per
container with `docker exec -i python3 -c <this file>`, it runs each command the runner sends, so a
warm `run` costs a few writes on one open stream instead of a Docker API exec (create, start, attach,
inspect) per command.

Protocol. Runner -> helper, one JSON object per line on stdin:
  {"op": "run", "id": N, "cmd": "...", "env": {...}}   run `/bin/sh -c cmd` in /workspace
  {"op": "kill", "id": N}                              kill command N (its time is up)
Helper -> runner, frames on stdout: kind (1 byte), id (4 bytes), length (4 bytes), payload:
  b"R" ready (payload: JSON {"pid"}), b"o" / b"e" a chunk of the command's stdout / stderr,
  b"x" the command is over (payload: JSON {"code", "killed", "strays", "left", "error"}).

Each command runs in its own session (process group), with stdin from /dev/null and an OOM score
that makes it, not the helper, what the kernel kills at the memory limit. When its main process has
exited and its output is closed (or after a short grace, if something it started holds the output
open), or when the runner says kill, every process in the container other than the container's own
(its init, its main `sleep`, this helper) is killed: nothing a command starts outlives it. `strays`
says how many were left behind; `left`, how many could not be killed (the runner then replaces the
container). Runs on the image's python3 (3.9 or later), with the standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import time
from typing import Any

WORKDIR = "/workspace"
GRACE_SECONDS = 0.3  # after the main process exited, how long a background process may hold the output
POLL_SECONDS = 0.02  # without pidfds: how often the main process's exit is checked
HEADER = struct.Struct(">cII")


def send(kind: bytes, rid: int, payload: bytes = b"") -> None:
    data = HEADER.pack(kind, rid, len(payload)) + payload
    while data:
        data = data[os.write(1, data) :]


def send_json(kind: bytes, rid: int, obj: dict[str, Any]) -> None:
    send(kind, rid, json.dumps(obj).encode())


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0], int(fields[1])


def _pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


class Helper:
    def __init__(self) -> None:
        self.me = os.getpid()
        # The container's own processes (its init and main process) are there before any command.
        self.keep = {p for p in _pids() if p == 1 or (_stat(p) or ("", 0))[1] in (0, 1)}
        self.keep.add(self.me)
        self.stdin = b""
        self.queue: list[dict[str, Any]] = []
        self.eof = False

    # -- requests ------------------------------------------------------------------------------

    def read_requests(self) -> None:
        chunk = os.read(0, 65536)
        if not chunk:
            self.eof = True
            return
        self.stdin += chunk
        *lines, self.stdin = self.stdin.split(b"\n")
        for line in lines:
            if line.strip():
                self.queue.append(json.loads(line))

    def next_run(self) -> dict[str, Any] | None:
        while not self.queue and not self.eof:
            self.read_requests()
        while self.queue:
            req = self.queue.pop(0)
            if req.get("op") == "run":
                return req
        return None  # kills of commands already over are ignored

    def kill_asked(self, rid: int) -> bool:
        asked = any(r.get("op") == "kill" and r.get("id") == rid for r in self.queue)
        self.queue = [r for r in self.queue if not (r.get("op") == "kill" and r.get("id") == rid)]
        return asked

    # -- one command ---------------------------------------------------------------------------

    def spawn(self, cmd: str, env: dict[str, str]) -> tuple[int, int, int]:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its own session, then the shell
            try:
                os.setsid()
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.closerange(3, 1 << 16)
                with open("/proc/self/oom_score_adj", "w", encoding="ascii") as f:
                    f.write("1000")
                os.chdir(WORKDIR)
                os.execve("/bin/sh", ["/bin/sh", "-c", cmd], env)  # noqa: S606 - the sandbox's own shell
            finally:
                os._exit(127)
        os.close(out_w)
        os.close(err_w)
        return pid, out_r, err_r

    def run(self, req: dict[str, Any]) -> None:
        rid = int(req["id"])
        try:
            pid, out_r, err_r = self.spawn(str(req["cmd"]), {str(k): str(v) for k, v in req["env"].items()})
        except OSError as e:  # e.g. no process left under the pids limit
            send_json(b"x", rid, {"code": None, "killed": False, "strays": 0, "left": 0, "error": str(e)})
            return
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        streams = {out_r: b"o", err_r: b"e"}
        status: int | None = None
        killed = False
        exited_at: float | None = None
        while streams or status is None:
            if status is not None and exited_at is not None and time.monotonic() - exited_at > GRACE_SECONDS:
                break  # something it started keeps the output open: it is killed below
            watch = [
                *streams,
                *([] if self.eof else [0]),
                *([pidfd] if pidfd is not None and status is None else []),
            ]
            wait = POLL_SECONDS if status is not None or pidfd is None else None
            ready, _, _ = select.select(watch, [], [], wait)
            for fd in ready:
                if fd == 0:
                    self.read_requests()
                    if self.kill_asked(rid) or self.eof:
                        killed = True
                elif fd in streams:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        send(streams[fd], rid, chunk)
                    else:
                        os.close(fd)
                        del streams[fd]
            if killed:
                break
            if status is None:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status, exited_at = st, time.monotonic()
        strays = self.kill_all(pid)
        if status is None:
            _, status = os.waitpid(pid, 0)
        for fd in streams:  # what is still buffered goes out before the end frame
            while chunk := _read_nonblocking(fd):
                send(streams[fd], rid, chunk)
            os.close(fd)
        if pidfd is not None:
            os.close(pidfd)
        left = len(self.others())
        code = os.waitstatus_to_exitcode(status)
        send_json(
            b"x",
            rid,
            {
                "code": 128 - code if code < 0 else code,
                "killed": killed,
                "strays": strays,
                "left": left,
                "error": "",
            },
        )

    def others(self) -> list[int]:
        """The processes commands started that are still alive (zombies are the init's to reap)."""
        alive = []
        for p in _pids():
            if p in self.keep:
                continue
            st = _stat(p)
            if st is not None and st[0] not in ("Z", "X"):
                alive.append(p)
        return alive

    def kill_all(self, pid: int) -> int:
        """Kill the command's group and every other process it left; how many were left behind."""
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        strays: set[int] = set()
        for _ in range(100):
            rest = [p for p in self.others() if p != pid]
            if not rest:
                break
            strays.update(rest)
            for p in rest:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.005)
        return len(strays)

    def serve(self) -> None:
        os.makedirs(os.environ.get("HOME", "/tmp/home"), exist_ok=True)  # noqa: S108 - inside the sandbox
        send_json(b"R", 0, {"pid": self.me})
        while (req := self.next_run()) is not None:
            self.run(req)


def _read_nonblocking(fd: int) -> bytes:
    if not select.select([fd], [], [], 0)[0]:
        return b""
    return os.read(fd, 65536)


if __name__ == "__main__":
    Helper().serve()
