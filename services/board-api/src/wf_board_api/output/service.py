"""Older agent output for the live log window: the `agent.output` events of one task before a point.

The log window renders only a tail and asks for older lines on demand. They are read back from the
WF_EVENTS stream (each line keeps its stream sequence as its id, the same id the live SSE stream
gives it, so the page merges both without duplicates). JetStream cannot read a filter backwards, so
windows growing towards the start of the stream are read until `limit` lines are found.
"""

from __future__ import annotations

import contextlib
from collections import deque

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from wf_common.events import AgentOutput
from wf_common.subjects import EVENTS_PREFIX, EVENTS_STREAM

from wf_board_api.output.schemas import OutputLine, OutputPage

FETCH_BATCH = 500
FIRST_WINDOW = 2000


async def older_output(
    js: JetStreamContext, project: str, key: str, *, before: int | None, limit: int, execution: int | None
) -> OutputPage:
    subject = f"{EVENTS_PREFIX}.{project}.{key}.agent.output"
    info = (await js.stream_info(EVENTS_STREAM)).state
    end = min(before - 1, info.last_seq) if before is not None else info.last_seq
    if not info.messages or end < info.first_seq:
        return OutputPage(lines=[], more=False)
    window = FIRST_WINDOW
    while True:
        start = max(info.first_seq, end - window + 1)
        lines = await _read(js, subject, start, end, limit, execution)
        if len(lines) >= limit or start == info.first_seq:
            more = start > info.first_seq or len(lines) >= limit
            return OutputPage(lines=list(lines), more=more and bool(lines))
        window *= 4


async def _read(
    js: JetStreamContext, subject: str, start: int, end: int, limit: int, execution: int | None
) -> deque[OutputLine]:
    lines: deque[OutputLine] = deque(maxlen=limit)
    sub = await js.pull_subscribe(
        subject,
        stream=EVENTS_STREAM,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            inactive_threshold=30.0,
        ),
    )
    try:
        pending = int((await sub.consumer_info()).num_pending or 0)
        while pending > 0:
            try:
                batch = await sub.fetch(min(FETCH_BATCH, pending), timeout=2)
            except nats.errors.TimeoutError:
                break
            for msg in batch:
                pending -= 1
                seq = int(msg.metadata.sequence.stream)
                if seq > end:
                    return lines
                try:
                    event = AgentOutput.model_validate_json(msg.data)
                except ValidationError:
                    continue
                if execution is not None and event.execution_id != execution:
                    continue
                lines.append(
                    OutputLine(
                        id=seq,
                        execution_id=event.execution_id,
                        stage=event.stage,
                        kind=event.kind,
                        text=event.text,
                    )
                )
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    return lines
