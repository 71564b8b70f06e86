"""The README's `wf` commands, exactly as written there, against the real board API and orchestrator.

Every ```-block line starting with `wf ` is run in order (`wf pause / wf resume` is two commands; `#`
starts a comment), and must succeed. Between them the test plays the agents the way a runner would
(tests/cli/pipeline.py), so the README's story holds: the PM's breakdown waits at its gate for
`wf approve T-001`, and T-002 reaches the deploy gate for `wf approve T-002`.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import WF, run_wf
from tests.cli.pipeline import _finish, break_down, wait_task
from tests.fixtures.stack import LiveStack

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    """`wf` lines of the README's untagged ``` blocks (a tagged block, ```yaml or ```console, is not a
    story to run: `console` marks commands that change the machine, such as `wf sandbox build`)."""
    commands: list[str] = []
    fence: str | None = None  # the open block's tag ("" for an untagged block)
    for raw in README.read_text(encoding="utf-8").splitlines():
        if raw.startswith("```"):
            fence = raw[3:].strip() if fence is None else None
            continue
        if fence != "":
            continue
        line = raw.split("#", 1)[0].strip()
        if line.startswith("wf "):
            commands += [part.strip() for part in line.split(" / ")]
    return commands


def test_the_readme_lists_the_commands_this_test_runs() -> None:
    assert readme_commands() == [
        "wf project create listsnap --workspace ~/code/listsnap",
        'wf idea "Mobile app that photographs items for marketplace listings" --project listsnap',
        "wf status",
        "wf approve T-001",
        "wf show T-002",
        "wf approve T-002",
        "wf pause",
        "wf resume",
        "wf watch",
    ]


def watch_shows_a_pause(stack: LiveStack, env: dict[str, str], argv: list[str]) -> None:
    proc = subprocess.Popen([str(WF), *argv], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert run_wf("--url", stack.url, "pause", env=env).code == 0
            assert run_wf("--url", stack.url, "resume", env=env).code == 0
            line = proc.stdout.readline()
            if "orchestration paused" in line or "orchestration resumed" in line:
                break
        else:
            raise AssertionError("wf watch printed no control event")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_every_readme_command_works_as_written(live_stack: LiveStack, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "WF_URL": live_stack.url, "WF_TOKEN": live_stack.token}
    for command in readme_commands():
        argv = shlex.split(command)[1:]
        if command == "wf approve T-001":
            break_down(live_stack, "listsnap", "T-001", "Photograph items", "Write the listing")
        if command == "wf approve T-002":
            for stage in ("dev", "qa", "sec", "docs"):
                asyncio.run(_finish(live_stack.nats_url, stage, "listsnap", "T-002"))
            wait_task(live_stack, "listsnap", "T-002", "deploy", "awaiting_approval")
        if command == "wf watch":
            watch_shows_a_pause(live_stack, env, argv)
            continue
        done = subprocess.run(
            [str(WF), *argv], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        assert done.returncode == 0, f"{command}: {done.stderr}{done.stdout}"
        if command.startswith("wf project create"):
            assert (home / "code" / "listsnap" / ".git").is_dir()
        if command == "wf approve T-002":
            wait_task(live_stack, "listsnap", "T-002", "testing", "running")  # dispatched to testing
