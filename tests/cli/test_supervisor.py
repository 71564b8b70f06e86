"""The supervisor with small dummy services: restart backoff, output, clean and forced shutdown."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from wf_cli.supervisor import RestartPolicy, ServiceSpec, Supervisor

from tests.cli.procs import alive, eventually, wait_for

PY = sys.executable


def service(tmp_path: Path, name: str, code: str) -> ServiceSpec:
    return ServiceSpec(name, [PY, "-c", textwrap.dedent(code)], tmp_path / "logs" / f"{name}.log")


def starts(path: Path) -> list[float]:
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def test_restart_delays_double_from_1s_up_to_30s() -> None:
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert policy.reset_after == 60


async def test_a_crashing_service_is_restarted_with_growing_delays(tmp_path: Path) -> None:
    stamps = tmp_path / "starts"
    crashy = service(tmp_path, "crashy", f"""
        import sys, time
        with open({str(stamps)!r}, "a") as f:
            f.write(f"{{time.time()}}\\n")
        print("boom", flush=True)
        sys.exit(3)
    """)  # fmt: skip
    echoed: list[tuple[str, str]] = []
    changes: list[int] = []
    sup = Supervisor(
        [crashy],
        RestartPolicy(initial=0.2, factor=2, cap=0.8),
        echo=lambda n, line: echoed.append((n, line)),
        on_change=lambda: changes.append(1),
    )
    await sup.start()
    svc = sup.service("crashy")
    # Checked while it runs: the stop below may kill a start before it exits with 3.
    await eventually(lambda: svc.restarts >= 4 and svc.last_exit == 3, 20, "4 restarts after exit 3")
    await sup.stop()

    assert len(starts(stamps)) >= 4  # every start ran the service
    assert ("crashy", "boom") in echoed
    assert len(changes) >= 5  # run.json gets rewritten on start and on every restart
    log = crashy.log_file.read_text()
    assert "boom" in log
    assert "crashy exited with code 3 after" in log
    delays = re.findall(r"restarting in ([0-9.]+)s", log)
    assert delays[:4] == ["0.2", "0.4", "0.8", "0.8"], delays  # it backs off, up to the cap


async def test_a_long_healthy_run_resets_the_backoff(tmp_path: Path) -> None:
    stamps = tmp_path / "starts"
    slow = service(tmp_path, "slow", f"""
        import sys, time
        with open({str(stamps)!r}, "a") as f:
            f.write(f"{{time.time()}}\\n")
        time.sleep(0.5)
        sys.exit(1)
    """)  # fmt: skip
    # Without the reset the delays would be 0.2, 0.8, 3.2 s.
    sup = Supervisor([slow], RestartPolicy(initial=0.2, factor=4, cap=5, reset_after=0.3))
    await sup.start()
    await eventually(lambda: len(starts(stamps)) >= 4, 20, "4 starts")
    await sup.stop()
    delays = re.findall(r"restarting in ([0-9.]+)s", slow.log_file.read_text())
    assert len(delays) >= 3, delays
    assert set(delays) == {"0.2"}, delays  # reset each time, never 0.8 or 3.2
    assert sup.service("slow").crashes_in_a_row == 1


async def test_stop_terminates_then_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    polite = service(tmp_path, "polite", "import time; print('up', flush=True); time.sleep(60)")
    stubborn = service(tmp_path, "stubborn", f"""
        import signal, subprocess, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "60"])  # a grandchild in the same process group
        open({str(ready)!r}, "w").write(str(child.pid))
        time.sleep(60)
    """)  # fmt: skip
    sup = Supervisor([polite, stubborn], RestartPolicy(initial=0.05))
    await sup.start()
    await eventually(lambda: ready.exists() and ready.read_text(), 10, "the stubborn service")
    pids = [s.pid for s in sup.services]
    grandchild = int(ready.read_text())
    assert all(p and alive(p) for p in pids)
    assert alive(grandchild)

    await sup.stop(grace=0.5)

    wait_for(lambda: not any(alive(p) for p in [*pids, grandchild] if p), 5, "every process to be gone")
    assert [s.restarts for s in sup.services] == [0, 0]  # stopping is not crashing
    assert sup.service("polite").last_exit == -signal.SIGTERM
    assert sup.service("stubborn").last_exit == -signal.SIGKILL
    assert "did not stop" not in polite.log_file.read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_services_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    """kill -9 of `wf start` must not leave services behind holding ports."""
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from wf_cli.supervisor import ServiceSpec, Supervisor

        async def main():
            sup = Supervisor([ServiceSpec("child", [sys.executable, "-c", "import time; time.sleep(60)"],
                                          Path({str(tmp_path / "child.log")!r}))])
            await sup.start()
            Path({str(pid_file)!r}).write_text(str(sup.services[0].pid))
            await asyncio.sleep(60)

        asyncio.run(main())
    """)
    holder = subprocess.Popen([PY, "-c", script])
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), 15, "the child to start")
        child = int(pid_file.read_text())
        assert alive(child)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(5)
        wait_for(lambda: not alive(child), 5, "the orphaned child to get SIGTERM")
    finally:
        holder.kill()
