"""make bench: one JSON line per figure (docs/performance.md): raw_jetstream_publish_to_fetch,
hop_real_runners, orchestrator_apply, throughput, board_read, orchestrator_rss_mb, and the machine."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from wf_cli.embedded import EmbeddedPostgres, NatsServer

from benchmarks import board_ui, pipeline, raw_jetstream, reads, real_runners
from benchmarks import sandbox as sandbox_bench
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


def print_log_tails(root: Path, lines: int = 60) -> None:
    """The end of every service log of a run that failed, to stderr: the directory goes with the run."""
    for log in sorted(root.glob("*.log")):
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        print(f"--- {log.name} (last {len(tail)} lines) ---", *tail, sep="\n", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(prog="make bench")
    ap.add_argument("--tasks", type=int, default=1000, help="tasks for the throughput run (multiple of 50)")
    ap.add_argument("--chain", type=int, default=40, help="tasks in the real-runner latency chain (max 50)")
    ap.add_argument("--raw", type=int, default=2000, help="messages for the raw JetStream run")
    ap.add_argument("--board-tasks", type=int, default=2000, help="tasks on the board for board_read")
    ap.add_argument("--rss-tasks", type=int, default=10000, help="tasks in the database for the RSS figure")
    args = ap.parse_args()
    print(json.dumps({"machine": machine()}), flush=True)
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
            print(json.dumps({"raw_jetstream_publish_to_fetch": summary_ms(raw)}), flush=True)
            cfg = pipeline.bench_config(root / "config.yaml")
            timings = root / "apply-timings.json"
            with pipeline.orchestrator(cfg, nats.url, db, root / "orchestrator.log", timings=timings):
                hops = real_runners.run(nats.url, root, cfg, tasks=min(50, args.chain))
            print(json.dumps({"hop_real_runners": summary_ms(hops)}), flush=True)
            print(json.dumps({"orchestrator_apply": summary_ms(json.loads(timings.read_text()))}), flush=True)
            with pipeline.orchestrator(cfg, nats.url, db, root / "orchestrator-2.log"):
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
                throughput = {
                    "tasks": ideas * min(50, args.tasks),
                    "transitions": moves,
                    "seconds": round(seconds, 2),
                    "transitions_per_second": round(moves / seconds, 1),
                    "jobs": agents.jobs,
                }
                print(json.dumps({"throughput": throughput}), flush=True)
                same, changed, count = reads.board_read(
                    cfg, nats.url, db, root, tasks=args.board_tasks, reads=300
                )
                for key, samples in (("board_read", same), ("board_read_after_a_write", changed)):
                    print(json.dumps({key: {**summary_ms(samples), "tasks": count}}), flush=True)
            count = asyncio.run(reads.top_up(db, args.rss_tasks))
            with pipeline.orchestrator(cfg, nats.url, db, root / "orchestrator-3.log") as proc:
                rss = reads.rss_mb(proc.pid)
            print(json.dumps({"orchestrator_rss_mb": {"rss_mb": rss, "tasks": count}}), flush=True)
            board_ui.run(nats.url, pg, root)  # the board in Chromium (docs/performance.md, "The board")
        except BaseException:
            print_log_tails(root)
            raise
        finally:
            pg.stop()
            nats.stop()
    sandbox_bench.main()


if __name__ == "__main__":
    main()
