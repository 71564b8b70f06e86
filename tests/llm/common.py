"""Shared bits of the LLM adapter tests."""

from __future__ import annotations

import socket
from typing import Any

KEY = "sk-test-5f0c2a9d8e7b6a4c3b2a1f0e"
USER: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
WRITE_FILE = {
    "type": "function",
    "function": {
        "name": "write_file",
        "description": "Write a file",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
}


def dead_url() -> str:
    """A port nobody listens on: bound once, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
