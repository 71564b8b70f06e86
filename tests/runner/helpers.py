"""Helpers for the agent runner tests (fixtures are in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

MODEL = "qwen2.5-coder:0.5b"
# Plugin autoload scans every installed package (~1s in this workspace); the projects don't need it.
PYTEST = f"{sys.executable} -m pytest -q -p no:cacheprovider --disable-plugin-autoload"

PRICES = '''\
def parse_price(text: str) -> float:
    """'$1,234.50' -> 1234.5"""
    return float(text.replace("$", "").replace(",", ""))
'''
PRICES_TEST = """\
from app.prices import parse_price


def test_parse_price() -> None:
    assert parse_price("$1,234.50") == 1234.5
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test Human")
    git(root, "config", "user.email", "human@example.test")
    git(root, "config", "commit.gpgsign", "false")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / ".gitignore").write_text("__pycache__/\n", encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Initial commit")
    return root


def log_subjects(root: Path, n: int = 20) -> list[str]:
    return git(root, "log", f"-{n}", "--format=%s").splitlines()


def last_message(request: dict[str, Any]) -> dict[str, Any]:
    msg: dict[str, Any] = request["messages"][-1]
    return msg
