"""Dependency checks for blocked_by edits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(edges: Mapping[int, Sequence[int]], task: int, blockers: Sequence[int]) -> list[int] | None:
    """If `task` were blocked by `blockers`, the cycle that would form, as [task, ..., task]; else None.

    `edges` maps each task id to the ids it is blocked by (the current graph; `task`'s own entry is
    ignored since it is being replaced).
    """
    # Depth-first from each new blocker along blocked_by edges; reaching `task` closes a loop.
    parents: dict[int, int] = {}
    stack: list[int] = []
    for b in blockers:
        if b == task:
            return [task, task]
        if b not in parents:
            parents[b] = task
            stack.append(b)
    while stack:
        node = stack.pop()
        for nxt in edges.get(node, ()):
            if nxt == task:
                return _path(parents, node, task)
            if nxt not in parents:
                parents[nxt] = node
                stack.append(nxt)
    return None


def _path(parents: Mapping[int, int], last: int, task: int) -> list[int]:
    """task → (blocked by) ... → last → (blocked by) task."""
    chain = [last]
    while chain[-1] != task:
        chain.append(parents[chain[-1]])
    # chain is last, ..., first blocker, task; read from task onwards.
    return [*reversed(chain), task]
