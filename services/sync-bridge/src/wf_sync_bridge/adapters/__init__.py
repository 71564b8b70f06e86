"""One connector per tracker, each implementing TaskAdapter (adapters/base.py)."""

from __future__ import annotations

from wf_common.config import AsanaTarget, GithubTarget, JiraTarget, LinearTarget, SyncTarget

from wf_sync_bridge.adapters.asana import AsanaAdapter
from wf_sync_bridge.adapters.base import TaskAdapter
from wf_sync_bridge.adapters.github import GithubAdapter
from wf_sync_bridge.adapters.jira import JiraAdapter
from wf_sync_bridge.adapters.linear import LinearAdapter


def make_adapter(target: SyncTarget) -> TaskAdapter:
    match target:
        case AsanaTarget():
            return AsanaAdapter(target)
        case JiraTarget():
            return JiraAdapter(target)
        case GithubTarget():
            return GithubAdapter(target)
        case LinearTarget():
            return LinearAdapter(target)


__all__ = ["TaskAdapter", "make_adapter"]
