"""Per-field three-way merge of a linked task: local value, remote value and the value both last agreed on.

One side changed → take it. Both changed to different values → the newer side wins and the other value
is reported as a conflict (for the audit log and a note). blocked_by merges as a set: additions from
either side are kept, removals by either side are applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wf_sync_bridge.fields import FIELDS


@dataclass
class Conflict:
    field: str
    winner: str  # local | remote
    kept: Any
    discarded: Any


@dataclass
class Merged:
    push: dict[str, Any] = field(default_factory=dict)  # write these to the tracker
    pull: dict[str, Any] = field(default_factory=dict)  # write these to the local task
    agreed: dict[str, Any] = field(default_factory=dict)  # what both sides hold once written
    conflicts: list[Conflict] = field(default_factory=list)


def merge_sets(local: list[str], remote: list[str], agreed: list[str] | None) -> list[str]:
    lo, re_ = set(local), set(remote)
    if agreed is None:
        return sorted(lo | re_)
    ag = set(agreed)
    return sorted((lo | re_) - ((ag - lo) | (ag - re_)))


def merge(
    local: dict[str, Any],
    remote: dict[str, Any],
    agreed: dict[str, Any],
    *,
    local_at: datetime,
    remote_at: datetime,
) -> Merged:
    """`remote` may lack a field (e.g. its body lost the priority line): that counts as unchanged there."""
    out = Merged()
    for f in FIELDS:
        lv = local[f]
        av = agreed.get(f)
        rv = remote.get(f, av if av is not None else lv)
        if f == "blocked_by":
            value = merge_sets(lv, rv, av)
            if value != sorted(lv):
                out.pull[f] = value
            if value != sorted(rv):
                out.push[f] = value
            out.agreed[f] = value
            continue
        if lv == rv:
            out.agreed[f] = lv
            continue
        if av is None:  # never agreed (first link): the local task is the source
            out.push[f], out.agreed[f] = lv, lv
            continue
        local_changed, remote_changed = lv != av, rv != av
        if local_changed and not remote_changed:
            out.push[f], out.agreed[f] = lv, lv
        elif remote_changed and not local_changed:
            out.pull[f], out.agreed[f] = rv, rv
        elif remote_at > local_at:
            out.pull[f], out.agreed[f] = rv, rv
            out.conflicts.append(Conflict(f, "remote", rv, lv))
        else:
            out.push[f], out.agreed[f] = lv, lv
            out.conflicts.append(Conflict(f, "local", lv, rv))
    return out
