"""One `wf start` per data directory; run.json; leftovers of a crashed run."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from wf_cli.datadir import AlreadyRunning, InstanceLock, read_run_file, write_run_file
from wf_cli.leftovers import stop_leftovers

from tests.cli.conftest import run_wf
from tests.cli.procs import alive, wait_for


def hold_lock(lock_file: Path) -> subprocess.Popen[str]:
    """Another process holding the data dir's lock, as a running `wf start` does."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from wf_cli.datadir import InstanceLock
        InstanceLock(Path({str(lock_file)!r})).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_start_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    holder = hold_lock(tmp_path / "wf.lock")
    try:
        with pytest.raises(AlreadyRunning) as info:
            InstanceLock(tmp_path / "wf.lock").acquire()
        assert info.value.pid == holder.pid

        r = run_wf("start", "--data-dir", str(tmp_path), "--port", "1")
        assert r.code == 1
        assert f"already running on {tmp_path} (pid {holder.pid})" in r.err
        assert not (tmp_path / "nats").exists()  # refused before starting anything
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    # The kernel dropped the lock with its holder: the data dir is free again.
    lock = InstanceLock(tmp_path / "wf.lock")
    lock.acquire()
    assert lock.previous_pid == holder.pid
    lock.release()


def test_a_stale_lock_from_a_dead_pid_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / "wf.lock").write_text("999999999\n")
    lock = InstanceLock(tmp_path / "wf.lock")
    lock.acquire()
    assert lock.previous_pid == 999999999
    assert (tmp_path / "wf.lock").read_text() == f"{os.getpid()}\n"
    lock.release()
    assert (tmp_path / "wf.lock").read_text() == ""  # empty: nobody runs here
    with InstanceLock(tmp_path / "wf.lock") as again:
        assert again.previous_pid is None


def test_run_file_is_written_whole_and_private(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_run_file(path, {"pid": 1, "services": {"runner-1": {"pid": 2}}})
    assert read_run_file(path) == {"version": 1, "pid": 1, "services": {"runner-1": {"pid": 2}}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it may hold a database URL
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left behind
    path.write_text("{half")
    assert read_run_file(path) is None


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_leftover_services_of_a_crashed_run_are_stopped(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "leftover"]
    leftover = subprocess.Popen(argv, start_new_session=True)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "stranger"])
    try:
        wait_for(lambda: Path(f"/proc/{leftover.pid}/cmdline").read_bytes().endswith(b"leftover\0"))
        previous = {
            "services": {
                "runner-1": {"pid": leftover.pid, "argv": argv},
                # same pid field but another program now: must not be touched
                "runner-2": {"pid": stranger.pid, "argv": [sys.executable, "-m", "wf_agent_runner"]},
            }
        }
        assert stop_leftovers(json.loads(json.dumps(previous)), timeout=5) == ["runner-1"]
        leftover.wait(5)
        assert alive(stranger.pid)
    finally:
        leftover.kill()
        stranger.kill()
        leftover.wait()
        stranger.wait()
