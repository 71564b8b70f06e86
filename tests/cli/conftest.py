"""Fixtures for the `wf` command's tests: ways to run `wf` (the real services: `live_stack`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from wf_cli.main import main

WF = Path(sys.executable).parent / "wf"


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_wf(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30, cwd: Path | None = None
) -> Result:
    """`wf ARGS` as a real process (the installed console script)."""
    full_env = {k: v for k, v in os.environ.items() if k != "WF_URL"}
    full_env.update(env or {})
    proc = subprocess.run(
        [str(WF), *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd, check=False
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A URL that refuses connections: a port bound (so nobody else can take it) but not listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


Wf = Callable[..., Result]


@pytest.fixture
def wf(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Wf:
    """`wf ARGS` in this process: the same code as the console script, without a Python start-up."""
    monkeypatch.delenv("WF_URL", raising=False)

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: usage errors, --help, --version
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run
