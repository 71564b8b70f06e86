"""The Sandbox contract, on each real backend: output, exit codes, limits, freeze/thaw, close."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from wf_agent_runner.sandbox import Sandbox, open_sandbox
from wf_agent_runner.sandbox.base import MEMORY, PIDS, TIMEOUT

from tests.sandbox.conftest import require, sandbox_config


async def test_output_streams_line_by_line_with_exit_code_and_stderr(sandbox: Sandbox) -> None:
    lines: list[str] = []

    async def on_line(line: str) -> None:
        lines.append(line)

    out = await sandbox.run("echo one; echo two >&2; pwd; exit 3", 30, on_line)
    assert out.exit_code == 3
    assert out.limit_hit is None
    assert out.stdout.split() == ["one", "/workspace"]
    assert out.stderr.strip() == "two"
    assert sorted(lines) == sorted(["one", "two", "/workspace"])
    assert "exit code: 3" in out.report()


async def test_lines_arrive_while_the_command_still_runs(sandbox: Sandbox) -> None:
    first = asyncio.Event()

    async def on_line(line: str) -> None:
        if line == "first":
            first.set()

    run = asyncio.create_task(sandbox.run("echo first; sleep 30", 60, on_line))
    await asyncio.wait_for(first.wait(), 20)
    assert not run.done()
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)


async def test_long_output_is_cut_with_a_note(sandbox: Sandbox) -> None:
    out = await sandbox.run("yes abcdefghij | head -c 300000", 60)
    assert out.exit_code == 0
    assert "chars cut" in out.stdout
    assert "stdout:" in out.truncated
    assert len(out.stdout) < 30_000
    assert out.stdout.startswith("abcdefghij")


async def test_the_workspace_is_writable_and_files_stay_the_owners(sandbox: Sandbox, worktree: Path) -> None:
    out = await sandbox.run("echo made > made.txt && mkdir -p sub && echo x > sub/f", 30)
    assert out.exit_code == 0, out.report()
    assert (worktree / "made.txt").read_text() == "made\n"
    owner, made, sub = (os.stat(p) for p in (worktree, worktree / "made.txt", worktree / "sub" / "f"))
    assert made.st_uid == owner.st_uid
    assert sub.st_gid == owner.st_gid


async def test_fresh_home_and_a_minimal_environment(sandbox: Sandbox) -> None:
    os.environ["WF_TEST_SECRET_TOKEN"] = "s3cr3t"  # the runner's environment must not leak in
    try:
        out = await sandbox.run('echo "home=$HOME"; env; ls -A "$HOME" | wc -l', 30)
    finally:
        del os.environ["WF_TEST_SECRET_TOKEN"]
    assert out.exit_code == 0
    assert "home=/tmp/home" in out.stdout
    assert "s3cr3t" not in out.stdout
    assert "NATS" not in out.stdout
    assert out.stdout.strip().endswith("0")  # an empty HOME


async def test_time_limit_kills_and_the_sandbox_keeps_working(sandbox: Sandbox) -> None:
    out = await sandbox.run("sleep 300", 1.5)
    assert out.limit_hit == TIMEOUT
    assert out.exit_code is None
    assert "limit hit: timeout" in out.report()
    again = await sandbox.run("echo still here", 30)
    assert again.stdout.strip() == "still here"


async def test_memory_limit(sandbox: Sandbox) -> None:
    out = await sandbox.run("python3 -c 'b = bytearray(600 * 1024 * 1024); print(len(b))'", 60)
    assert out.limit_hit == MEMORY, out.report()
    assert "limit hit: memory" in out.report()
    assert str(600 * 1024 * 1024) not in out.stdout


async def test_fork_bomb_hits_the_pids_limit(sandbox: Sandbox) -> None:
    out = await sandbox.run("bomb() { bomb | bomb & }; bomb; sleep 3", 20)
    assert out.limit_hit == PIDS, out.report()
    again = await sandbox.run("echo recovered", 30)
    assert again.stdout.strip() == "recovered"


async def test_freeze_stops_time_for_the_command_and_thaw_continues(sandbox: Sandbox) -> None:
    ticks: list[str] = []
    more = asyncio.Event()

    async def on_line(line: str) -> None:
        ticks.append(line)
        more.set()

    async def until(n: int) -> None:
        while len(ticks) < n:
            more.clear()
            await asyncio.wait_for(more.wait(), 20)

    run = asyncio.create_task(
        sandbox.run("i=0; while [ $i -lt 400 ]; do echo $i; i=$((i+1)); sleep 0.05; done", 120, on_line)
    )
    await until(3)
    await sandbox.freeze()
    await asyncio.sleep(0.3)  # let a line that was already in flight arrive
    frozen_at = len(ticks)
    await asyncio.sleep(1.0)
    assert len(ticks) == frozen_at  # nothing ran while frozen
    await sandbox.thaw()
    await until(frozen_at + 1)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)


async def test_close_ends_everything_and_later_runs_are_refused(backend: str, worktree: Path) -> None:
    labels = {"wf.project": "listsnap", "wf.task": "T-010", "wf.execution": "2", "wf.runner": "test"}
    sb = await open_sandbox(sandbox_config(backend), worktree, labels, lifetime=60)
    run = asyncio.create_task(sb.run("sleep 7391", 120))
    await asyncio.sleep(1.0)
    await sb.close()
    await asyncio.gather(run, return_exceptions=True)
    assert not await _process_with("sleep 7391")
    late = await sb.run("echo no", 5)
    assert late.exit_code is None
    assert "closed" in late.stderr


def _running(marker: str) -> bool:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            return True
    return False


async def _process_with(marker: str) -> bool:
    """Whether a process on this machine (containers included) still has `marker` in its command line
    after a few seconds for the kernel to reap what was killed."""
    for _ in range(50):
        if not await asyncio.to_thread(_running, marker):
            return False
        await asyncio.sleep(0.1)
    return True


async def test_a_background_process_does_not_outlive_its_command(sandbox: Sandbox) -> None:
    out = await sandbox.run("sleep 8311 >/dev/null 2>&1 & echo started", 30)
    assert out.exit_code == 0, out.report()
    assert out.stdout.strip() == "started"
    assert not await _process_with("sleep 8311")  # gone while the sandbox is still open
    again = await sandbox.run("echo next", 30)
    assert again.stdout.strip() == "next"


async def test_a_cancelled_command_is_stopped_and_the_next_one_runs(sandbox: Sandbox) -> None:
    started = asyncio.Event()

    async def on_line(line: str) -> None:
        started.set()

    run = asyncio.create_task(sandbox.run("echo go; sleep 8423", 120, on_line))
    await asyncio.wait_for(started.wait(), 20)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    again = await sandbox.run("echo next", 30)
    assert again.stdout.strip() == "next", again.report()
    assert not await _process_with("sleep 8423")


async def test_a_tools_dir_under_tmp_is_on_the_path_in_bubblewrap(worktree: Path, tmp_path: Path) -> None:
    """The tools venv of a checkout under /tmp (a CI clone there) must not vanish under the sandbox's
    own /tmp."""
    require("bubblewrap")
    tools = tmp_path / "tools"
    (tools / "bin").mkdir(parents=True)
    tool = tools / "bin" / "wf-probe-tool"
    tool.write_text("#!/bin/sh\necho probe tool runs\n")
    tool.chmod(0o755)
    labels = {"wf.project": "listsnap", "wf.task": "T-009", "wf.execution": "1", "wf.runner": "test"}
    config = sandbox_config("bubblewrap", tools_dir=str(tools))
    sb = await open_sandbox(config, worktree, labels, lifetime=60)
    try:
        out = await sb.run("wf-probe-tool", 30)
    finally:
        await sb.close()
    assert out.exit_code == 0, out.stderr
    assert "probe tool runs" in out.stdout
