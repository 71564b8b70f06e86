"""Fixtures for the sandbox tests: each test runs on every real backend (docker and bubblewrap).

A backend that is not there is a skip that says so locally, and a failure in CI (CI=true): CI's
.ci/engines starts a private dockerd, builds the sandbox image and installs bubblewrap. The image is
`WF_SANDBOX_IMAGE` (default wf-sandbox:latest, made by `wf sandbox build`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from wf_agent_runner.sandbox import Sandbox, open_sandbox
from wf_agent_runner.sandbox.base import SandboxError
from wf_agent_runner.sandbox.docker import client
from wf_common.config import SandboxConfig

from tests.fakes.ollama import ScriptedOllama
from tests.runner.helpers import MODEL, make_repo

BACKENDS = ("docker", "bubblewrap")
IMAGE = os.environ.get("WF_SANDBOX_IMAGE", "wf-sandbox:latest")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LIMITS: dict[str, Any] = {"memory_mb": 128, "pids": 64, "image": IMAGE}


def missing_engine(backend: str) -> str | None:
    """Why `backend` cannot run here, or None."""
    if backend == "bubblewrap":
        return None if shutil.which("bwrap") else "bubblewrap (bwrap) is not installed"
    try:
        c = client()
    except SandboxError as err:
        return f"no Docker engine answers (set DOCKER_HOST): {err}"
    try:
        c.images.get(IMAGE)
    except Exception as err:  # noqa: BLE001 - any SDK error means the image is not usable
        return f"the sandbox image {IMAGE} is missing (`wf sandbox build`): {err}"
    finally:
        c.close()
    return None


def require(backend: str) -> None:
    reason = missing_engine(backend)
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI must run the {backend} sandbox tests for real, but {reason}")
    pytest.skip(f"{backend} sandbox not available here: {reason}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    require(name)
    return name


def sandbox_config(backend: str, **overrides: Any) -> SandboxConfig:
    return SandboxConfig(backend=backend, **{**LIMITS, **overrides})


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "ws", {"app/__init__.py": "", "README.md": "hello\n"})


@pytest.fixture
async def sandbox(backend: str, worktree: Path) -> AsyncIterator[Sandbox]:
    labels = {"wf.project": "listsnap", "wf.task": "T-009", "wf.execution": "1", "wf.runner": "test"}
    sb = await open_sandbox(sandbox_config(backend), worktree, labels, lifetime=120)
    try:
        yield sb
    finally:
        await sb.close()


@pytest.fixture
def fake() -> Iterator[ScriptedOllama]:
    with ScriptedOllama(models=(MODEL,)) as server:
        yield server
