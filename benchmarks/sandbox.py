"""Sandbox start overhead, side by side with a plain subprocess of the same command (`true`).

Prints one JSON line, `sandbox_overhead`: per backend the p50/p99 of one `run` call in a warm sandbox
(docker: an exec in the job's running container; bubblewrap: new namespaces per call), its overhead
over the plain subprocess, and for docker the cold start of a job's container (create + start).
Goals: warm run within 50 ms of the plain subprocess; cold docker start under 1 s; bubblewrap within
20 ms. A backend that is not available here is reported as skipped with the reason.
Run alone: `python -m benchmarks.sandbox` (DOCKER_HOST and WF_SANDBOX_IMAGE as for the tests).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from wf_agent_runner.sandbox import SandboxError, open_sandbox
from wf_agent_runner.sandbox.bubblewrap import available as bwrap_available
from wf_common.config import SandboxConfig

from benchmarks.stats import summary_ms

COMMAND = "true"
WARM_RUNS = 40
COLD_STARTS = 5
LABELS = {"wf.project": "bench", "wf.task": "T-000", "wf.execution": "0", "wf.runner": "bench"}


async def _plain(n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", COMMAND)
        await proc.wait()
        samples.append(time.perf_counter() - t)
    return samples


async def _warm(backend: str, ws: Path, n: int) -> list[float]:
    config = SandboxConfig(backend=backend, image=os.environ.get("WF_SANDBOX_IMAGE", "wf-sandbox:latest"))
    sb = await open_sandbox(config, ws, LABELS, lifetime=600)
    try:
        await sb.run(COMMAND, 30)  # the first call may warm caches
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            await sb.run(COMMAND, 30)
            samples.append(time.perf_counter() - t)
        return samples
    finally:
        await sb.close()


async def _cold_docker(ws: Path, n: int) -> list[float]:
    config = SandboxConfig(backend="docker", image=os.environ.get("WF_SANDBOX_IMAGE", "wf-sandbox:latest"))
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        sb = await open_sandbox(config, ws, LABELS, lifetime=600)
        samples.append(time.perf_counter() - t)
        await sb.close()
    return samples


async def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wf-bench-sandbox-") as tmp:
        ws = Path(tmp)
        plain = summary_ms(await _plain(WARM_RUNS))
        report: dict[str, Any] = {"command": COMMAND, "plain_subprocess": plain}
        for backend in ("none", "bubblewrap", "docker"):
            if backend == "bubblewrap" and not bwrap_available():
                report[backend] = {"skipped": "bwrap is not installed"}
                continue
            try:
                warm = summary_ms(await _warm(backend, ws, WARM_RUNS))
            except SandboxError as err:
                report[backend] = {"skipped": str(err)}
                continue
            entry: dict[str, Any] = {
                "warm_run": warm,
                "warm_overhead_p50_ms": round(warm["p50_ms"] - plain["p50_ms"], 3),
            }
            if backend == "docker":
                entry["cold_start"] = summary_ms(await _cold_docker(ws, COLD_STARTS))
            report[backend] = entry
        return report


def main() -> None:
    print(json.dumps({"sandbox_overhead": asyncio.run(measure())}))


if __name__ == "__main__":
    main()
