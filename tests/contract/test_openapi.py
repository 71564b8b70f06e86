"""The board API keeps the contract its OpenAPI schema states, under Schemathesis, against the real stack.

Every check (server errors, status codes and bodies as declared, schema-valid requests accepted and
invalid ones refused, Allow on 405, …), every phase (examples, coverage, fuzzing, stateful), a bounded
number of examples so it fits CI: once with a fixed seed (the same requests every run) and once with a
random one, printed so a failure can be replayed (`st run … --seed N`). It must find nothing.

/api/events is left out: it is a stream that stays open (tests/board/test_events.py covers it).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.stack import LiveStack

ST = Path(sys.executable).parent / "st"
ROOT = Path(__file__).resolve().parents[2]
FIXED_SEED = 20261201
# Cases per operation and phase; the coverage phase adds its own (every boundary of every parameter).
MAX_EXAMPLES = 4


def run_schemathesis(stack: LiveStack, seed: int, workdir: Path) -> tuple[int, str]:
    workspaces = workdir / "workspaces"
    workspaces.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.contract.schemathesis_hooks",
        "WF_FUZZ_WORKSPACES": str(workspaces),
    }
    command = [
        str(ST), "run", f"{stack.url}/openapi.json",
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(seed),
        "--header", f"Authorization: Bearer {stack.token}",
        "--exclude-path", "/api/events",
        # One worker: with two, CPython 3.11's compile() can fail in Hypothesis' lambda descriptions
        # when two threads parse at once ("AST constructor recursion depth mismatch").
        "--workers", "1",
        "--request-timeout", "30",
        "--generation-database", "none",
        "--no-color",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=1100, check=False
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.timeout(1200)  # a few minutes alone on 2 cores; the subprocess has its own bound
@pytest.mark.parametrize(
    "seed", [FIXED_SEED, random.SystemRandom().randrange(2**31)], ids=["fixed", "random"]
)
def test_the_api_keeps_its_openapi_contract_under_schemathesis(
    stack: LiveStack, seed: int, tmp_path: Path
) -> None:
    print(f"schemathesis seed {seed} (replay: st run {stack.url}/openapi.json --seed {seed} …)")
    before = sorted(p.name for p in stack.tmp.iterdir())
    code, output = run_schemathesis(stack, seed, tmp_path)
    summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-3000:]
    generated = re.search(r"(\d+) generated", summary)
    # The warnings name the operations (e.g. which ones mostly answered 404), the summary counts them.
    print(output[output.find("WARNINGS") : output.rfind("SUMMARY")] if "WARNINGS" in output else "")
    print(summary)
    assert code == 0, f"Schemathesis (seed {seed}) found failures:\n{output[-20000:]}"
    assert generated is not None
    assert int(generated.group(1)) > 100, summary
    assert "0 unique failures" in summary or "found" not in summary.split("generated", 1)[1][:40], summary
    # Nothing landed where the services run (a relative workspace once made repositories there).
    assert sorted(p.name for p in stack.tmp.iterdir()) == before
    assert "Traceback" not in stack.orchestrator_log()
