"""make bench: prints (1) raw JetStream publish→fetch latency, (2) orchestration overhead per stage
hop, (3) stage transitions per second for 500 tasks, with the machine they ran on, as JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
from pathlib import Path

from wf_common.embedded import EmbeddedPostgres, NatsServer

from benchmarks import board_ui, pipeline, raw_jetstream
from benchmarks.stats import summary_ms


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="make bench")
    ap.add_argument("--tasks", type=int, default=500, help="tasks for the throughput run (multiple of 50)")
    ap.add_argument("--chain", type=int, default=50, help="tasks in each latency chain (max 50)")
    ap.add_argument("--raw", type=int, default=2000, help="messages for the raw JetStream run")
    args = ap.parse_args()
    print(json.dumps({"machine": machine()}))
    with tempfile.TemporaryDirectory(prefix="wf-bench-") as tmp:
        root = Path(tmp)
        nats = NatsServer(root / "nats")
        pg = EmbeddedPostgres(root / "pg", durable=True)  # as `wf start` runs it
        nats.start()
        pg.start()
        try:
            pg.create_database("bench")
            db = pg.async_url("bench")
            raw = asyncio.run(raw_jetstream.measure(nats.url, count=args.raw))
            raw_s = summary_ms(raw)
            print(json.dumps({"raw_jetstream_publish_to_fetch": raw_s}))
            cfg = pipeline.bench_config(root / "config.yaml")
            with pipeline.orchestrator(cfg, nats.url, db, root / "orchestrator.log"):
                samples: list[float] = []
                for i in range(2):
                    agents, _, _ = asyncio.run(
                        pipeline.run(
                            nats.url,
                            db,
                            root,
                            ideas=1,
                            tasks_per_idea=args.chain,
                            chain=True,
                            project=f"lat{i}",
                        )
                    )
                    samples += agents.overhead
                over = summary_ms(samples)
                over["p50_vs_raw"] = round(over["p50_ms"] / raw_s["p50_ms"], 2)
                print(json.dumps({"orchestration_overhead_result_to_next_job": over}))
                ideas = max(1, args.tasks // 50)
                agents, seconds, moves = asyncio.run(
                    pipeline.run(
                        nats.url,
                        db,
                        root,
                        ideas=ideas,
                        tasks_per_idea=min(50, args.tasks),
                        chain=False,
                        project="thru",
                    )
                )
                print(
                    json.dumps(
                        {
                            "throughput": {
                                "tasks": ideas * min(50, args.tasks),
                                "transitions": moves,
                                "seconds": round(seconds, 2),
                                "transitions_per_second": round(moves / seconds, 1),
                                "jobs": agents.jobs,
                            }
                        }
                    )
                )
            board_ui.run(nats.url, pg, root)  # the board in Chromium (docs/performance.md, "The board")
        finally:
            pg.stop()
            nats.stop()


if __name__ == "__main__":
    main()
