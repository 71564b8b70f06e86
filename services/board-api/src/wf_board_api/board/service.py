"""Group tasks into the board's columns."""

from __future__ import annotations

from collections.abc import Sequence

from wf_common.events import TaskSnapshot

from wf_board_api.board.schemas import BoardOut


def build_board(tasks: Sequence[TaskSnapshot], stages: Sequence[str], *, paused: bool) -> BoardOut:
    columns: dict[str, list[TaskSnapshot]] = {s: [] for s in stages}
    order = list(stages)
    for task in tasks:
        if task.stage not in columns:
            # A stage removed from config.yaml while tasks still sat in it: show it at the end rather
            # than hiding those tasks.
            columns[task.stage] = []
            order.append(task.stage)
        columns[task.stage].append(task)
    return BoardOut(paused=paused, stages=order, columns=columns)
