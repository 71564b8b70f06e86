"""The scripted model behind the end-to-end test: it plays every agent the way a real model would,
through Ollama's wire protocol (tool calls and structured JSON), deciding its reply from the request.

The calculator project: the PM splits the idea into `add` and `multiply` (multiply depends on add).
DEV's first `multiply` is wrong, QA's test catches it, the bug goes back to DEV, and DEV fixes it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.ollama import Reply

ROLE_MARKERS = {
    "pm": "Break features into small, testable tasks",
    "dev": "Check for existing patterns in the codebase",
    "qa": "Test the acceptance criteria explicitly",
    "sec": "Scan for hardcoded secrets",
    "docs": "Update README if setup steps changed",
    "testing": "Run full E2E test suite",
}

BREAKDOWN = {
    "tasks": [
        {
            "title": "Add function add",
            "description": "calc.add(a, b) returns the sum of two numbers.",
            "acceptance_criteria": ["add(2, 3) == 5", "add(-1, 1) == 0"],
            "priority": 8,
            "depends_on": [],
        },
        {
            "title": "Add function multiply",
            "description": "calc.multiply(a, b) returns the product of two numbers.",
            "acceptance_criteria": ["multiply(2, 3) == 6"],
            "priority": 5,
            "depends_on": [0],
        },
    ]
}

FOLLOW_UP = {
    "tasks": [
        {
            "title": "Add function subtract",
            "description": "calc.subtract(a, b) returns a - b.",
            "acceptance_criteria": ["subtract(5, 3) == 2"],
            "priority": 5,
            "depends_on": [],
        }
    ]
}

CODE = {
    "add": ("calc/add.py", "def add(a, b):\n    return a + b\n"),
    "multiply-buggy": ("calc/multiply.py", "def multiply(a, b):\n    return a + b\n"),
    "multiply": ("calc/multiply.py", "def multiply(a, b):\n    return a * b\n"),
    "subtract": ("calc/subtract.py", "def subtract(a, b):\n    return a - b\n"),
}
TESTS = {
    "add": (
        "tests/test_add.py",
        "from calc.add import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    ),
    "multiply": (
        "tests/test_multiply.py",
        "from calc.multiply import multiply\n\n\ndef test_multiply():\n    assert multiply(2, 3) == 6\n",
    ),
    "subtract": (
        "tests/test_subtract.py",
        "from calc.subtract import subtract\n\n\ndef test_subtract():\n    assert subtract(5, 3) == 2\n",
    ),
}


def _text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages if m.get("role") in ("system", "user"))


def _role(prompt: str) -> str:
    for role, marker in ROLE_MARKERS.items():
        if marker in prompt:
            return role
    raise AssertionError(f"cannot tell the agent's role from the prompt: {prompt[:300]!r}")


def _feature(prompt: str) -> str:
    for name in ("multiply", "subtract", "add"):
        if f"Add function {name}" in prompt:
            return name
    raise AssertionError("cannot tell which task the prompt is about")


@dataclass
class CalculatorModel:
    """Responder for ScriptedOllama. Thread-safe; records what it saw for the test's assertions."""

    hang_once_on: str | None = None  # e.g. "dev:subtract": the first such request hangs
    hung: threading.Event = field(default_factory=threading.Event)
    roles_seen: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pm_calls: int = 0

    def __call__(self, request: dict[str, Any]) -> Reply:
        messages = request.get("messages") or []
        prompt = _text(messages)
        role = _role(prompt)
        with self._lock:
            self.roles_seen.append(role)
        if role == "pm":
            with self._lock:
                self._pm_calls += 1
            return Reply.json(FOLLOW_UP if "subtract" in prompt else BREAKDOWN)
        feature = _feature(prompt)
        key = f"{role}:{feature}"
        if self.hang_once_on == key and not self.hung.is_set():
            self.hung.set()
            return Reply.text("…", delay=3600)  # the runner is killed while it waits for this
        # How many tool results the agent has already seen = which step of the script we are at.
        step = sum(1 for m in messages if m.get("role") == "tool")
        return self._script(role, feature, prompt)[min(step, 2)]

    def _script(self, role: str, feature: str, prompt: str) -> list[Reply]:
        done = Reply.tool("finish", status="pass", summary=f"{role} done for {feature}")
        if role == "dev":
            # The bug report (its failing test) in the prompt is how DEV knows to fix multiply.
            fixed = feature != "multiply" or "test_multiply" in prompt
            path, code = CODE[feature if fixed else "multiply-buggy"]
            return [
                Reply.tool("write_file", path="calc/__init__.py", content=""),
                Reply.tool("write_file", path=path, content=code),
                Reply.tool("finish", status="pass", summary=f"Implement {feature}"),
            ]
        if role == "qa":
            path, code = TESTS[feature]
            return [Reply.tool("write_file", path=path, content=code), done, done]
        if role == "docs":
            return [
                Reply.tool("write_file", path=f"docs/{feature}.md", content=f"# {feature}\n\nSee calc/.\n"),
                done,
                done,
            ]
        return [done, done, done]  # sec, testing: nothing to write


def breakdown_json() -> str:
    return json.dumps(BREAKDOWN)
