"""make bench-agents: does the team beat a single agent?

Each task under benchmarks/agent_tasks/ (a statement.md and a hidden_test.py the agents never see)
runs twice with the same model:

- single-shot: one DEV execution, no QA;
- pipeline: DEV, then QA writing and running tests; a QA failure goes back to DEV with the failing
  tests as a bug (as the orchestrator does), up to `--rework-limit` times.

Then the hidden tests run on a copy of the workspace. Printed per task and mode: hidden tests passed,
executions, tokens, wall time; then the pass rates. `--record` appends the figures to
docs/performance.md. The agents run in-process (no bus) through the configured adapter.

Cheap on a small local model, without changing what is measured:
- every execution of a role sends the same system message (principles, instructions and, for
  emulated tool calls, the tool descriptions) and the same tool list on every turn; the task comes
  after it. A server that reuses a prompt's prefix (llama.cpp keeps the previous request's KV;
  llama-server, Ollama and vLLM cache prefixes as well) evaluates that prefix once per run of turns;
- `--max-tokens` bounds each reply (a 0.5B model otherwise rambles to the context limit);
- `--resume FILE` appends each (task, mode) outcome to FILE as a JSON line when it is done and
  skips the ones already there, so an interrupted run continues where it stopped.

    python -m benchmarks.agents --adapter openai --base-url http://127.0.0.1:8080/v1 --model qwen
    python scripts/real_llm.py bench          # the same against the local Qwen2.5-Coder 0.5B
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from wf_agent_runner.agents import AgentContext, agent_for
from wf_agent_runner.llm import build_adapter
from wf_agent_runner.llm.errors import LLMError
from wf_agent_runner.output import OutputSink, Transcript, transcript_path
from wf_agent_runner.sandbox import open_sandbox
from wf_agent_runner.testrun import run_tests
from wf_common.config import LLMBackendConfig, SandboxConfig
from wf_common.jobs import BugRef, Job, ProjectRef, Result, TaskRef, idempotency_key
from wf_common.states import Verdict

TASKS_DIR = Path(__file__).parent / "agent_tasks"
PERFORMANCE = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
MODES = ("single", "pipeline")
# What the agents write runs in the bubblewrap sandbox, with the agents' tools venv (`make
# sandbox-tools`: pytest among them) bound read-only and first on PATH, so `python` there is its python.
TOOLS_DIR = Path(__file__).resolve().parent.parent / ".tools" / "sandbox"
LABELS = {"wf.project": "bench", "wf.runner": "bench"}
TEST_COMMAND = "python -m pytest -q -p no:cacheprovider"


def bench_sandbox(tools_dir: Path = TOOLS_DIR) -> SandboxConfig:
    if not (tools_dir / "bin" / "pytest").exists():
        raise SystemExit(f"bench-agents: no agents' tools at {tools_dir}; run `make sandbox-tools` first")
    return SandboxConfig(backend="bubblewrap", tools_dir=str(tools_dir))


@dataclass(frozen=True)
class AgentTask:
    name: str
    title: str
    description: str
    criteria: list[str]
    hidden_test: str


@dataclass
class Outcome:
    task: str
    mode: str
    passed: bool  # the hidden tests
    executions: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    note: str = ""


def load_tasks(root: Path = TASKS_DIR, only: list[str] | None = None) -> list[AgentTask]:
    tasks = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if only and d.name not in only:
            continue
        text = (d / "statement.md").read_text(encoding="utf-8")
        head, _, rest = text.partition("\n")
        body, _, crit = rest.partition("## Acceptance criteria")
        criteria = [ln[2:].strip() for ln in crit.splitlines() if ln.startswith("- ")]
        tasks.append(
            AgentTask(
                d.name, head.lstrip("# ").strip(), body.strip(), criteria, (d / "hidden_test.py").read_text()
            )
        )
    return tasks


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def new_workspace(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Bench")
    git(path, "config", "user.email", "bench@example.test")
    (path / "README.md").write_text("# bench\n", encoding="utf-8")
    (path / ".gitignore").write_text("__pycache__/\n.workflow/agent_logs/\n", encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "Initial commit")
    return path


class Bench:
    def __init__(
        self, llm: LLMBackendConfig, workdir: Path, *, rework_limit: int = 3, max_turns: int = 20
    ) -> None:
        self.llm = llm
        self.workdir = workdir
        self.rework_limit = rework_limit
        self.max_turns = max_turns
        self.sandbox = bench_sandbox()

    async def execute(self, ws: Path, task: AgentTask, role: str, attempt: int, bugs: list[BugRef]) -> Result:
        project = ProjectRef(slug="bench", name="Bench", workspace=str(ws), test_command=TEST_COMMAND)
        ref = TaskRef(
            key="T-001", title=task.title, description=task.description, acceptance_criteria=task.criteria
        )
        job = Job(
            job_id=attempt,
            idempotency_key=idempotency_key("bench", "T-001", role, attempt),
            stage=role,
            role=role,
            attempt=attempt,
            project=project,
            task=ref,
            bugs=bugs,
            max_turns=self.max_turns,
        )
        sink = OutputSink(None, job, actor="bench", transcript=Transcript(transcript_path(ws, job)))
        adapter = build_adapter(self.llm, role)
        sandbox = await open_sandbox(self.sandbox, ws, LABELS)
        try:
            result: Result = await agent_for(role)(
                AgentContext(job, adapter, sink, ws, runner_id="bench", sandbox=sandbox)
            ).run()
            return result
        finally:
            await sandbox.close()
            await adapter.aclose()
            await sink.aclose()

    async def run(self, task: AgentTask, mode: str) -> Outcome:
        ws = new_workspace(self.workdir / f"{task.name}-{mode}")
        out = Outcome(task.name, mode, passed=False)
        started = time.monotonic()

        def count(r: Result) -> Result:
            out.executions += 1
            out.prompt_tokens += r.usage.prompt_tokens
            out.completion_tokens += r.usage.completion_tokens
            return r

        dev = count(await self.execute(ws, task, "dev", 1, []))
        if mode == "pipeline":
            bugs: list[BugRef] = []
            for rework in range(self.rework_limit + 1):
                if dev.status is not Verdict.PASS:
                    out.note = "DEV did not finish"
                    break
                qa = count(await self.execute(ws, task, "qa", rework + 1, []))
                if qa.status is Verdict.PASS:
                    break
                if rework == self.rework_limit:
                    out.note = "rework limit reached"
                    break
                run = qa.test_run
                bugs = [
                    BugRef(
                        key=f"B-{rework + 1:03d}",
                        title=f"QA failed: {', '.join(run.failed_tests[:3]) if run else 'see summary'}",
                        description=qa.summary,
                        source_stage="qa",
                        reproduction=run.model_dump(mode="json") if run else {},
                    )
                ]
                dev = count(await self.execute(ws, task, "dev", rework + 2, bugs))
        elif dev.status is not Verdict.PASS:
            out.note = "DEV did not finish"
        out.passed = await self.hidden_tests(ws, task)
        out.seconds = round(time.monotonic() - started, 1)
        return out

    async def hidden_tests(self, ws: Path, task: AgentTask) -> bool:
        """The hidden tests on a copy of the workspace (the agents never saw them)."""
        check = self.workdir / f"{ws.name}-hidden"
        shutil.copytree(ws, check, ignore=shutil.ignore_patterns(".git", ".workflow"))
        (check / "test_hidden_bench.py").write_text(task.hidden_test, encoding="utf-8")
        sandbox = await open_sandbox(self.sandbox, check, LABELS)
        try:
            report = await run_tests(sandbox, f"{TEST_COMMAND} test_hidden_bench.py", limit_seconds=120)
        finally:
            await sandbox.close()
        return bool(report.run.passed)


def summary(outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    out = {}
    for mode in MODES:
        mine = [o for o in outcomes if o.mode == mode]
        if not mine:
            continue
        out[mode] = {
            "tasks": len(mine),
            "pass_rate": round(sum(o.passed for o in mine) / len(mine), 3),
            "tokens_per_task": round(sum(o.prompt_tokens + o.completion_tokens for o in mine) / len(mine)),
            "seconds_per_task": round(sum(o.seconds for o in mine) / len(mine), 1),
        }
    return out


def render(outcomes: list[Outcome]) -> str:
    lines = [f"{'task':24} {'mode':9} {'hidden':7} {'runs':>4} {'tokens':>8} {'seconds':>8}  note"]
    for o in outcomes:
        lines.append(
            f"{o.task:24} {o.mode:9} {'pass' if o.passed else 'FAIL':7} {o.executions:>4} "
            f"{o.prompt_tokens + o.completion_tokens:>8} {o.seconds:>8.1f}  {o.note}"
        )
    for mode, s in summary(outcomes).items():
        lines.append(
            f"{mode}: {s['pass_rate'] * 100:.0f}% of {s['tasks']:.0f} tasks pass the hidden tests; "
            f"{s['tokens_per_task']:.0f} tokens and {s['seconds_per_task']:.1f}s per task"
        )
    return "\n".join(lines)


def record(outcomes: list[Outcome], model: str, path: Path = PERFORMANCE) -> None:
    rows = "\n".join(
        f"| {mode} | {s['tasks']:.0f} | {s['pass_rate'] * 100:.0f}% | {s['tokens_per_task']:.0f} | "
        f"{s['seconds_per_task']:.1f} |"
        for mode, s in summary(outcomes).items()
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"\n## Agents: single-shot vs pipeline ({model}, {when})\n\n"
        "`make bench-agents`: hidden tests passed, tokens and wall time per task.\n\n"
        "| mode | tasks | pass rate | tokens/task | seconds/task |\n|---|---|---|---|---|\n"
        f"{rows}\n"
    )
    with path.open("a", encoding="utf-8") as f:
        f.write(section)


def load_outcomes(path: Path) -> list[Outcome]:
    """The outcomes a `--resume` file holds (one JSON object a line). A line cut off by an interrupted
    write is skipped: that (task, mode) runs again."""
    if not path.exists():
        return []
    known = {f.name for f in fields(Outcome)}
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and {"task", "mode", "passed"} <= obj.keys():
            out.append(Outcome(**{k: v for k, v in obj.items() if k in known}))
    return out


def append_outcome(path: Path, outcome: Outcome) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab+") as f:
        cut = False  # the file ends in a line an interrupted write cut off: start a new line
        if f.seek(0, 2) > 0:
            f.seek(-1, 2)
            cut = f.read(1) != b"\n"
        f.write((("\n" if cut else "") + json.dumps(asdict(outcome)) + "\n").encode())
        f.flush()


async def run_all(
    bench: Bench,
    tasks: list[AgentTask],
    modes: tuple[str, ...] = MODES,
    *,
    resume: Path | None = None,
    done: Iterable[Outcome] = (),
) -> list[Outcome]:
    """Every (task, mode) not in `done` (or in the `resume` file); with `resume`, each new outcome is
    appended to it as soon as it is known. Returns the outcomes of all pairs, earlier ones included."""
    earlier = {(o.task, o.mode): o for o in [*done, *(load_outcomes(resume) if resume else [])]}
    outcomes = []
    for task in tasks:
        for mode in modes:
            if (task.name, mode) in earlier:
                outcomes.append(earlier[(task.name, mode)])
                continue
            outcomes.append(await bench.run(task, mode))
            if resume is not None:
                append_outcome(resume, outcomes[-1])
            print(render([outcomes[-1]]).splitlines()[1], flush=True)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make bench-agents", description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", default="openai", choices=["openai", "ollama", "anthropic"])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--tasks", nargs="*", help="task directory names (default: all)")
    ap.add_argument("--rework-limit", type=int, default=3)
    ap.add_argument("--max-turns", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=512, help="bound on each model reply (tokens)")
    modes = ["auto", "native", "emulated"]
    ap.add_argument("--tool-calls", default="auto", choices=modes, help="as llm_backend.tool_calls")
    ap.add_argument(
        "--resume", type=Path, default=None, help="append outcomes to this JSON-lines file; skip those in it"
    )
    ap.add_argument("--record", action="store_true", help="append the figures to docs/performance.md")
    ap.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    ap.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the workspaces (and agents' transcripts) under this folder",
    )
    args = ap.parse_args(argv)
    llm = LLMBackendConfig(
        adapter=args.adapter,
        host=args.base_url,
        model=args.model,
        api_key=args.api_key,
        timeout_seconds=900,
        max_tokens=args.max_tokens,
        tool_calls=args.tool_calls,
    )
    tasks = load_tasks(only=args.tasks)
    with tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp:
        workdir = Path(tmp)
        if args.keep is not None:
            workdir = args.keep / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            workdir.mkdir(parents=True)
        bench = Bench(llm, workdir, rework_limit=args.rework_limit, max_turns=args.max_turns)
        try:
            outcomes = asyncio.run(run_all(bench, tasks, resume=args.resume))
        except LLMError as err:  # the model server went away: what is measured so far is kept
            kept = f"; the outcomes so far are in {args.resume}, run again to continue" if args.resume else ""
            print(f"bench-agents: stopped: {err}{kept}", file=sys.stderr)
            return 1
    print(json.dumps([asdict(o) for o in outcomes], indent=2) if args.json else render(outcomes))
    if args.record:
        record(outcomes, args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
