"""Docker: each command goes through the container's command helper (one `docker exec -i` per
sandbox). An image without python3 for the helper still works, one Docker exec per command."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from wf_agent_runner.sandbox import open_sandbox
from wf_agent_runner.sandbox.base import TIMEOUT
from wf_agent_runner.sandbox.docker import client

from tests.sandbox.conftest import IMAGE, require, sandbox_config
from tests.sandbox.test_backends import _process_with

LABELS = {"wf.project": "listsnap", "wf.task": "T-041", "wf.execution": "41", "wf.runner": "test"}


@pytest.fixture(scope="module")
def image_without_python() -> Iterator[str]:
    """The sandbox image with python3 removed (a real image, made with `docker commit`)."""
    require("docker")
    tag = f"wf-sandbox-nopython:{uuid.uuid4().hex[:8]}"
    c = client()
    try:
        box = c.containers.run(
            IMAGE, ["/bin/sh", "-c", "rm -f /usr/bin/python3* /usr/local/bin/python3*"], detach=True,
            network_mode="none", user="0:0",
        )  # fmt: skip
        try:
            assert box.wait(timeout=60)["StatusCode"] == 0
            repo, version = tag.split(":")
            box.commit(repository=repo, tag=version)
        finally:
            box.remove(force=True)
        yield tag
    finally:
        c.images.remove(tag, force=True)
        c.close()


async def test_an_image_without_python_runs_each_command_as_its_own_exec(
    image_without_python: str, worktree: Path
) -> None:
    config = sandbox_config("docker", image=image_without_python)
    sb = await open_sandbox(config, worktree, LABELS, lifetime=120)
    try:
        out = await sb.run("command -v python3 || echo no-python; echo oops >&2; exit 4", 30)
        assert out.exit_code == 4, out.report()
        assert out.stdout.strip() == "no-python"
        assert out.stderr.strip() == "oops"
        slow = await sb.run("sleep 8537", 1.5)
        assert slow.limit_hit == TIMEOUT
        assert not await _process_with("sleep 8537")
        again = await sb.run("git status --porcelain && echo fine", 30)
        assert again.stdout.strip().endswith("fine"), again.report()
    finally:
        await sb.close()
