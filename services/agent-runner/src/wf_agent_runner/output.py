"""What an agent does, streamed as `AgentOutput` events and written in full to a JSONL transcript.

Events are for people watching live, so they are coalesced (model tokens arrive a few characters at a
time; one NATS message each would flood the bus) and long texts are clipped. The transcript in
`.workflow/agent_logs/<task>-<stage>-<attempt>.jsonl` keeps everything, unclipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from nats.js import JetStreamContext
from wf_common import bus
from wf_common.events import AgentOutput, AgentOutputKind
from wf_common.jobs import Job

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.1
FLUSH_CHARS = 200
EVENT_TEXT_LIMIT = 2000


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more chars]"


def transcript_path(workspace: Path, job: Job) -> Path:
    return workspace / ".workflow" / "agent_logs" / f"{job.task.key}-{job.stage}-{job.attempt}.jsonl"


class Transcript:
    """Appends JSON lines; a redelivered job appends to the same file after a `delivery` record."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        ignore = path.parent / ".gitignore"
        if not ignore.exists():
            # The directory ignores itself: transcripts never show up as changes or get committed.
            ignore.write_text("*\n", encoding="utf-8")
        self.path = path
        self._file: IO[str] | None = open(path, "a", encoding="utf-8")  # noqa: SIM115 - the file stays open for the writer's lifetime

    def write(self, kind: str, **data: Any) -> None:
        if self._file is None:
            return
        record = {"at": datetime.now(UTC).isoformat(), "kind": kind, **data}
        self._file.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Coalescer:
    """Collects pieces of one kind and hands them on every FLUSH_SECONDS or FLUSH_CHARS."""

    def __init__(self, sink: OutputSink, kind: AgentOutputKind) -> None:
        self.sink = sink
        self.kind = kind
        self.parts: list[str] = []
        self.size = 0
        self.timer: asyncio.Task[None] | None = None

    async def add(self, piece: str) -> None:
        self.parts.append(piece)
        self.size += len(piece)
        if self.size >= self.sink.flush_chars:
            await self.flush()
        elif self.timer is None:
            self.timer = asyncio.create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(self.sink.flush_seconds)
        self.timer = None
        await self.flush()

    async def flush(self) -> None:
        if self.timer is not None and self.timer is not asyncio.current_task():
            self.timer.cancel()
            self.timer = None
        if not self.parts:
            return
        text, self.parts, self.size = "".join(self.parts), [], 0
        await self.sink._publish(self.kind, text)


class OutputSink:
    """One job's output. `js=None` (tests of single agents) writes the transcript only."""

    def __init__(
        self,
        js: JetStreamContext | None,
        job: Job,
        *,
        actor: str,
        transcript: Transcript | None = None,
        flush_seconds: float = FLUSH_SECONDS,
        flush_chars: int = FLUSH_CHARS,
    ) -> None:
        self.js = js
        self.job = job
        self.actor = actor
        self.transcript = transcript
        self.flush_seconds = flush_seconds
        self.flush_chars = flush_chars
        self.seq = 0
        self._lock = asyncio.Lock()  # seq order = publish order, even with timers flushing
        self._tokens = _Coalescer(self, "token")
        self._commands = _Coalescer(self, "command_output")
        self._warned = False

    def record(self, kind: str, **data: Any) -> None:
        """Transcript only (prompts, full replies): too big or too internal for the live stream."""
        if self.transcript is not None:
            self.transcript.write(kind, **data)

    async def token(self, piece: str) -> None:
        """`on_token` callback for the LLM adapter."""
        await self._tokens.add(piece)

    async def command_output(self, line: str) -> None:
        self.record("command_output", line=line)
        await self._commands.add(line if line.endswith("\n") else line + "\n")

    async def emit(self, kind: AgentOutputKind, text: str, **data: Any) -> None:
        """One event now (after any buffered tokens/output, to keep the order), plus its full record."""
        self.record(kind, text=text, **data)
        await self.flush()
        await self._publish(kind, clip(text, EVENT_TEXT_LIMIT))

    async def flush(self) -> None:
        await self._tokens.flush()
        await self._commands.flush()

    async def aclose(self) -> None:
        await self.flush()
        if self.transcript is not None:
            self.transcript.close()

    async def _publish(self, kind: AgentOutputKind, text: str) -> None:
        if self.js is None:
            return
        async with self._lock:
            self.seq += 1
            event = AgentOutput(
                project=self.job.project.slug,
                task_key=self.job.task.key,
                actor=self.actor,
                execution_id=self.job.job_id,
                stage=self.job.stage,
                kind=kind,
                text=text,
                seq=self.seq,
            )
            try:
                await bus.publish(self.js, event.subject(), event)
            except Exception as err:  # live output is best effort; the job and its transcript go on  # noqa: BLE001 - a boundary: any failure is reported or logged, never crashes the loop
                if not self._warned:
                    log.warning("could not publish agent output for %s: %s", self.job.idempotency_key, err)
                    self._warned = True


async def close_quietly(sink: OutputSink) -> None:
    with contextlib.suppress(Exception):
        await sink.aclose()
