"""The scripted model behind the browser tests: one idea → one task (`add`), through every stage.

Everything it writes that a page shows carries an XSS payload (the task's description, DEV's code
and summary, the tool output), so every view is checked for escaping. DEV's replies are slowed down
so the test can watch its output stream.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.scenario import ROLE_MARKERS
from tests.fakes.ollama import Reply

XSS = (
    '<script>window.__xss = "script"</script> <img src=x onerror="window.__xss = \'img\'"> '
    "<a href=\"javascript:window.__xss = 'link'\">click</a>"
)
CODE = f"def add(a, b):\n    return a + b\n\n\n# {XSS}\n"
TEST = "from calc.add import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
BREAKDOWN = {
    "tasks": [
        {
            "title": "Add function add",
            "description": f"calc.add(a, b) returns the sum. {XSS}",
            "acceptance_criteria": ["add(2, 3) == 5"],
            "priority": 8,
            "depends_on": [],
        }
    ]
}


def _prompt(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages if m.get("role") in ("system", "user"))


@dataclass
class BoardModel:
    dev_delay: float = 1.5
    prompts: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: dict[str, Any]) -> Reply:
        messages = request.get("messages") or []
        prompt = _prompt(messages)
        role = next((r for r, marker in ROLE_MARKERS.items() if marker in prompt), "unknown")
        with self._lock:
            self.prompts.append((role, prompt))
        if role == "pm":
            return Reply.json(BREAKDOWN)
        step = min(sum(1 for m in messages if m.get("role") == "tool"), 2)
        done = Reply.tool("finish", status="pass", summary=f"{role} done {XSS}")
        if role == "dev":
            script = [
                Reply.tool("write_file", path="calc/__init__.py", content=""),
                Reply.tool("write_file", path="calc/add.py", content=CODE),
                Reply.tool("finish", status="pass", summary=f"Implement add {XSS}"),
            ]
            reply = script[step]
            reply.delay = self.dev_delay
            return reply
        if role == "qa":
            return [Reply.tool("write_file", path="tests/test_add.py", content=TEST), done, done][step]
        if role == "docs":  # DOCS fails a code change that no doc describes (agents/doccheck.py)
            doc = Reply.tool("write_file", path="docs/add.md", content=f"# add\n\n{XSS}\n")
            return [doc, done, done][step]
        return done

    def prompts_of(self, role: str) -> list[str]:
        with self._lock:
            return [p for r, p in self.prompts if r == role]
