"""`wf sync status | link | unlink | resync` through the real board API, against the real bridge."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from wf_board_api.app import create_app
from wf_board_api.settings import BoardSettings
from wf_cli.embedded import NatsServer
from wf_cli.main import main as wf

from tests.board.conftest import API_TOKEN, AUTH_HEADERS, serve
from tests.orchestrator.hub import Hub, eventually
from tests.sync import views
from tests.sync.conftest import Fakes
from tests.sync.test_end_to_end import until


def run_wf(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = wf(list(argv))
    return code, out.getvalue()


async def test_wf_sync_shows_links_and_links_unlinks_and_resyncs(
    hub: Hub,
    fakes: Fakes,
    make_bridge: Callable[..., Any],
    nats_server: NatsServer,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WF_TOKEN", API_TOKEN)
    target = fakes.targets()[2]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"task_backend": {"sync_to": [target]}}))
    settings = BoardSettings(
        config=str(config), nats_url=nats_server.url, database_url=database_url, api_token=API_TOKEN
    )
    await make_bridge([target])
    await hub.cmd("submit_idea", project="demo", text="Linked idea")
    await until(lambda: len(views.github_items(fakes.github, "T-001")) == 1, "T-001 in GitHub")
    async with serve(create_app(settings)) as url:

        async def status() -> dict[str, Any]:
            async with httpx.AsyncClient(headers=AUTH_HEADERS) as client:
                data: dict[str, Any] = (await client.get(f"{url}/api/sync/status")).json()
                return data

        async def linked(n: int) -> bool:
            s = await status()
            return bool(s["running"]) and s["targets"][0]["linked"] == n

        await eventually(lambda: linked(1), within=10, what="one linked task")
        code, out = await _wf("--url", url, "sync", "status")
        assert code == 0
        assert out.splitlines()[1].split()[:3] == ["github", "github", "1"]

        code, out = await _wf("--url", url, "sync", "unlink", "T-001", "--project", "demo")
        assert (code, "unlinked demo/T-001 from github" in out) == (0, True), out
        assert (await status())["targets"][0]["linked"] == 0

        # Link the task to an issue a human opened: the task's fields are written there.
        number = fakes.github.human_create("Opened by hand", "some text")
        code, out = await _wf("--url", url, "sync", "link", "T-001", str(number), "--project", "demo")
        assert (code, f"linked demo/T-001 to #{number} in github" in out) == (0, True)
        await until(
            lambda: fakes.github.issue(number)["title"] == "Linked idea", "the task's title on the issue"
        )

        code, out = await _wf("--url", url, "sync", "link", "T-001", "99999", "--project", "demo")
        assert (code, out.strip()) == (1, "wf: error: github has no item '99999'")
        code, out = await _wf("--url", url, "sync", "link", "T-001", str(number), "--project", "demo")
        assert (code, "demo/T-001 is already linked to github; unlink it first" in out) == (1, True)

        code, out = await _wf("--url", url, "sync", "resync")
        assert code == 0
        assert "github: 1 task(s) queued for a full reconcile" in out
        async with httpx.AsyncClient(headers=AUTH_HEADERS) as client:
            health = (await client.get(f"{url}/health")).json()
        assert health["checks"]["sync_bridge"] == "ok"


async def _wf(*argv: str) -> tuple[int, str]:
    import asyncio

    return await asyncio.to_thread(run_wf, *argv)
