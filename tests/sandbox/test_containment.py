"""The containment suite: a job whose agent, through the `run` tool, tries to get out.

Each attack runs as a real job in the real executor (`JobExecutor`, the runner's job path) with the
real sandbox backend and the scripted model over HTTP: the model calls `run(attack)`, reads the
result, and finishes. The attack is stopped or refused, the tool result says which limit it hit, the
job ends with the agent's verdict (not a runner error), the executor serves the next job, and
afterwards nothing the job started is running and no container of it is left.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from wf_agent_runner.execution import JobExecutor
from wf_agent_runner.sandbox.docker import client
from wf_common.config import parse_config
from wf_common.jobs import Job, ProjectRef, TaskRef, idempotency_key
from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.helpers import MODEL, last_message
from tests.sandbox.conftest import LIMITS, require
from tests.sandbox.test_backends import _process_with


class Listener:
    """A TCP listener on the host's loopback that records whether anyone connected."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connected.set()
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    srv = Listener()
    yield srv
    srv.close()


@pytest.fixture
def planted() -> Iterator[Path]:
    """A secret file in the host user's home directory."""
    path = Path.home() / f".wf-containment-{uuid.uuid4().hex[:8]}"
    path.write_text("host secret 8c1f\n", encoding="utf-8")
    yield path
    path.unlink(missing_ok=True)


def executor(host: str, backend: str) -> JobExecutor:
    config = parse_config(
        {
            "llm_backend": {"host": host, "model": MODEL, "timeout_seconds": 20},
            "sandbox": {"backend": backend, **LIMITS, "run_timeout_seconds": 2, "run_timeout_max_seconds": 4},
        }
    )
    return JobExecutor(config, None, runner_id=f"contain-{uuid.uuid4().hex[:6]}", test_timeout=30)


def job_for(worktree: Path, job_id: int) -> Job:
    project = ProjectRef(slug="listsnap", name="ListSnap", workspace=str(worktree), test_command="true")
    task = TaskRef(key=f"T-{job_id:03d}", title="Try to get out")
    return Job(
        job_id=job_id,
        idempotency_key=idempotency_key(project.slug, task.key, "dev", 1),
        stage="dev",
        role="dev",
        attempt=1,
        project=project,
        task=task,
        timeout_seconds=120,
    )


async def run_attack(
    fake: ScriptedOllama, backend: str, worktree: Path, command: str, job_id: int
) -> tuple[str, Verdict]:
    """Run one job whose agent runs `command`; the tool result the model saw, and the verdict."""
    # DEV's first "fail" with nothing written goes back once, and the turn after accepts only the
    # tools that write; its third finish stands.
    give_up = Reply.tool("finish", status="fail", summary="I could not get out")
    fake.queue(Reply.tool("run", command=command, timeout_seconds=60), give_up, give_up, give_up)
    ex = executor(fake.url, backend)
    before = len(fake.requests)
    outcome = await ex.execute(job_for(worktree, job_id), 1)
    assert outcome.result is not None
    assert outcome.result.error is None, outcome.result.summary  # the job itself worked
    seen = last_message(fake.requests[before + 1])  # what the model saw after its run
    assert seen["role"] == "tool"
    # The executor keeps serving: the next job on it runs normally.
    fake.queue(
        Reply.tool("run", command="echo alive"),
        Reply.tool("write_file", path=f"alive-{job_id + 1}.txt", content="alive\n"),
        Reply.tool("finish", status="pass", summary="ok"),
    )
    nxt = await ex.execute(job_for(worktree, job_id + 1), 1)
    assert nxt.result is not None
    assert nxt.result.status is Verdict.PASS, nxt.result.summary
    assert any("alive" in m["content"] for m in fake.requests[-1]["messages"] if m["role"] == "tool")
    await assert_nothing_left(backend, job_id)
    return str(seen["content"]), outcome.result.status


async def assert_nothing_left(backend: str, job_id: int) -> None:
    if backend != "docker":
        return
    c = await asyncio.to_thread(client)
    try:
        for _ in range(50):
            left = c.containers.list(all=True, filters={"label": f"wf.execution={job_id}"})
            if not left:
                return
            await asyncio.sleep(0.1)
        pytest.fail(f"containers left after the job: {[x.name for x in left]}")
    finally:
        c.close()


@pytest.mark.parametrize(
    "target", ["/etc/wf-escape", "../wf-escape", "/tmp/wf-escape"], ids=["etc", "dotdot", "host-tmp"]
)
async def test_writes_outside_the_workspace_are_refused(
    fake: ScriptedOllama, backend: str, worktree: Path, target: str
) -> None:
    marker = uuid.uuid4().hex[:8]
    path = f"{target}-{marker}"
    seen, status = await run_attack(fake, backend, worktree, f"echo pwned > {path}; echo rc=$?", 101)
    assert status is Verdict.FAIL  # what the agent decided
    host = os.path.join(worktree, path) if not path.startswith("/") else path
    for where in (host, f"/tmp/wf-escape-{marker}", os.path.join(worktree.parent, f"wf-escape-{marker}")):
        assert not await asyncio.to_thread(os.path.lexists, where)
    assert "rc=0" not in seen or "/tmp/" in path  # /tmp is the sandbox's own tmpfs there, not the host's


async def test_reading_a_host_file_outside_the_workspace_fails(
    fake: ScriptedOllama, backend: str, worktree: Path, planted: Path
) -> None:
    seen, _ = await run_attack(fake, backend, worktree, f"cat {planted}; cat ~/{planted.name}", 111)
    assert "host secret 8c1f" not in seen
    assert "No such file" in seen


async def test_no_connection_to_the_hosts_loopback(
    fake: ScriptedOllama, backend: str, worktree: Path, listener: Listener
) -> None:
    probe = (
        'python3 -c "import socket; s = socket.socket(); s.settimeout(3); '
        f"s.connect(('127.0.0.1', {listener.port})); print('CONNECTED')\""
    )
    seen, _ = await run_attack(fake, backend, worktree, probe, 121)
    assert "CONNECTED" not in seen
    assert not listener.connected.is_set()


async def test_a_fork_bomb_hits_the_process_limit(fake: ScriptedOllama, backend: str, worktree: Path) -> None:
    seen, _ = await run_attack(fake, backend, worktree, "bomb() { bomb | bomb & }; bomb; sleep 2", 131)
    assert "limit hit: pids" in seen


async def test_allocating_past_the_memory_limit(fake: ScriptedOllama, backend: str, worktree: Path) -> None:
    seen, _ = await run_attack(
        fake, backend, worktree, "python3 -c 'b = bytearray(700 * 1024 * 1024); print(\"ALLOCATED\")'", 141
    )
    assert "limit hit: memory" in seen
    assert "ALLOCATED" not in seen


async def test_a_command_that_never_ends_is_killed(
    fake: ScriptedOllama, backend: str, worktree: Path
) -> None:
    seen, _ = await run_attack(fake, backend, worktree, "sleep 8137; echo woke", 151)
    assert "limit hit: timeout" in seen
    assert "capped at 4s" in seen  # the model asked for 60 s; the configuration allows 4
    assert "woke" not in seen
    assert not await _process_with("sleep 8137")


async def test_background_processes_do_not_outlive_the_job(
    fake: ScriptedOllama, backend: str, worktree: Path
) -> None:
    seen, _ = await run_attack(
        fake, backend, worktree, "sleep 8243 >/dev/null 2>&1 & sleep 8244 & echo started", 161
    )
    assert "started" in seen
    assert not await _process_with("sleep 8243")
    assert not await _process_with("sleep 8244")


def test_the_runner_removes_containers_a_dead_runner_left_behind() -> None:
    # Docker only: a bubblewrap sandbox dies with its runner (--die-with-parent).
    require("docker")
    from wf_agent_runner.sandbox.docker import remove_leftovers

    c = client()
    try:
        dead = c.containers.run(
            LIMITS["image"], ["sleep", "600"], detach=True, auto_remove=True, network_mode="none",
            labels={"wf.host": socket.gethostname(), "wf.pid": str(_dead_pid()), "wf.runner": "old-runner"},
        )  # fmt: skip
        assert remove_leftovers("new-runner") >= 1
        assert not c.containers.list(all=True, filters={"id": dead.id})
    finally:
        c.close()


def _dead_pid() -> int:
    """A pid that no process has (a child that already exited)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
