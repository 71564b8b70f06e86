"""Behaviour shared by the stand-in services that `wf start` runs in tests/cli/test_start.py.

The directory holding this file is put first on PYTHONPATH, so `python -m wf_orchestrator` and the
others start these stand-ins instead of the real services. Each writes what it was started with
(argv, pid, WF_* environment) to $FAKE_OUT/<name>.json and runs until SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path


def record(name: str) -> None:
    out = Path(os.environ["FAKE_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    facts = {
        "pid": os.getpid(),
        "argv": sys.argv,
        "env": {k: v for k, v in os.environ.items() if k.startswith("WF_")},
    }
    tmp = out / f".{name}.json"
    tmp.write_text(json.dumps(facts))
    tmp.replace(out / f"{name}.json")
    print(f"{name} started (pid {os.getpid()})", flush=True)


def run_until_sigterm(name: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if os.environ.get("FAKE_IGNORE_SIGTERM") == name:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while not stop.wait(0.1):
        pass
    print(f"{name} got SIGTERM, exiting", flush=True)
