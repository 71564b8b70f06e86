"""Group tasks into the board's columns: the response body, as JSON bytes."""

from __future__ import annotations

import json
from collections.abc import Sequence

from wf_board_api.board.repository import Column


def board_json(columns: Sequence[Column], stages: Sequence[str], *, paused: bool) -> bytes:
    """BoardOut as JSON: every pipeline stage in order; a stage removed from config.yaml while tasks
    still sat in it comes at the end rather than hiding those tasks."""
    by_stage = {c.stage: c for c in columns}
    known = set(stages)
    order = [*stages, *(c.stage for c in sorted(columns, key=lambda c: c.first) if c.stage not in known)]
    body = ",".join(f"{json.dumps(s)}:{by_stage[s].tasks_json if s in by_stage else '[]'}" for s in order)
    head = json.dumps({"paused": paused, "stages": order})[:-1]
    return f'{head},"columns":{{{body}}}}}'.encode()
