"""Loop guards: stop an agent that spends too many tokens or repeats itself.

Max turns is checked by the loop itself. The guards here are the token budgets (per execution and
per task, from config `guards:`) and the same tool call (name and arguments) made N times. When one
trips, the agent stops and the task goes to needs-human with the guard's reason.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from wf_common.config import GuardConfig
from wf_common.jobs import Job, Usage

from wf_agent_runner import confined
from wf_agent_runner.confined import ConfinementError

TRANSCRIPTS = ".workflow/agent_logs"


def task_tokens_so_far(workspace: Path, job: Job) -> int:
    """Tokens the task's earlier executions used, from their transcripts in the workspace."""
    total = 0
    prefix = f"{job.task.key}-"
    try:
        with confined.rooted(workspace) as root:
            dir_fd = confined.open_dir(root, TRANSCRIPTS)
            try:
                names = sorted(n for n in os.listdir(dir_fd) if n.startswith(prefix) and n.endswith(".jsonl"))
            finally:
                os.close(dir_fd)
            for name in names:
                data, _ = confined.read_bytes(root, f"{TRANSCRIPTS}/{name}", 50_000_000)
                total += _tokens(data)
    except (OSError, ConfinementError):
        return total
    return total


def _tokens(data: bytes) -> int:
    total = 0
    for line in data.splitlines():
        if b'"assistant"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("kind") == "assistant":
            total += int(record.get("prompt_tokens") or 0) + int(record.get("completion_tokens") or 0)
    return total


class LoopGuard:
    def __init__(self, config: GuardConfig, *, task_tokens_before: int = 0) -> None:
        self.config = config
        self.task_tokens_before = task_tokens_before
        self.calls: Counter[str] = Counter()

    def after_reply(self, usage: Usage) -> str | None:
        used = usage.prompt_tokens + usage.completion_tokens
        per_exec = self.config.tokens_per_execution
        if per_exec and used > per_exec:
            return (
                f"stopped: this execution used {used} tokens, over its budget of {per_exec} "
                "(guards.tokens_per_execution); a human should look at the task"
            )
        per_task = self.config.tokens_per_task
        if per_task and self.task_tokens_before + used > per_task:
            total = self.task_tokens_before + used
            return (
                f"stopped: the task has used {total} tokens over all its executions, "
                f"over its budget of {per_task} (guards.tokens_per_task); a human should look at the task"
            )
        return None

    def before_call(self, name: str, arguments: dict[str, Any]) -> str | None:
        key = f"{name}:{json.dumps(arguments, sort_keys=True, default=str)}"
        self.calls[key] += 1
        limit = self.config.repeated_tool_calls
        if self.calls[key] >= limit:
            return (
                f"stopped: the agent made the same tool call {name}({_clip(key[len(name) + 1 :])}) "
                f"{limit} times (guards.repeated_tool_calls); it is stuck in a loop, a human should look"
            )
        return None


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
