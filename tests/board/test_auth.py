"""Nobody but the owner drives the board: token, session cookie, CSRF, Origin and Host checks.

The board runs under a real uvicorn, in front of the real orchestrator (in-process) on a real NATS
and PostgreSQL. "Changes nothing" is checked twice: no command reaches `wf.cmd.*` (a passive
subscriber sees every one), and the pipeline is still not paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from wf_board_api.app import create_app
from wf_board_api.settings import BoardSettings
from wf_cli.main import main as wf_main
from wf_common.subjects import COMMANDS_PREFIX

from tests.board.conftest import API_TOKEN, AUTH_HEADERS, serve
from tests.orchestrator.conftest import config, migrated_template
from tests.orchestrator.hub import Hub, eventually

UNSAFE_POSTS = [
    "/api/control/pause",
    "/api/control/resume",
    "/api/projects/demo/tasks/T-001/approve",
    "/api/projects/demo/tasks/T-001/retry",
    "/api/projects/demo/bugs/B-001/kill",
    "/api/projects",
]


class CommandLog:
    """Every command published to the orchestrator, seen by a plain subscriber."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def record(self, msg: Msg) -> None:
        self.subjects.append(msg.subject)


__all__ = ["migrated_template"]  # a session fixture, shared with the orchestrator's tests


@pytest.fixture
async def commands(nc: NATS) -> CommandLog:
    log = CommandLog()
    await nc.subscribe(f"{COMMANDS_PREFIX}.>", cb=log.record)
    await nc.flush()
    return log


@pytest.fixture
async def hub(settings: BoardSettings, database_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    h = Hub(settings.resolved_nats_url(), database_url, config())
    await h.start()
    await h.project("demo", tmp_path / "demo")
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def board(settings: BoardSettings, hub: Hub) -> AsyncIterator[str]:
    async with serve(create_app(settings)) as url:
        yield url


async def paused(url: str) -> bool:
    async with httpx.AsyncClient(base_url=url, headers=AUTH_HEADERS) as http:
        response = await http.get("/api/control")
        assert response.status_code == 200, response.text
        value: bool = response.json()["paused"]
        return value


async def session(http: httpx.AsyncClient) -> str:
    """Open the board the way `wf url` says; returns the CSRF cookie the page would send back."""
    response = await http.get(f"/?token={API_TOKEN}")
    assert response.status_code == 303
    return http.cookies["wf_csrf"]


async def test_cross_site_posts_are_refused_and_change_nothing(board: str, commands: CommandLog) -> None:
    before = len(commands.subjects)
    # What a form or fetch() on another site sends: text/plain or nothing, no token, no custom header.
    async with httpx.AsyncClient(base_url=board) as http:
        for path in UNSAFE_POSTS:
            for headers in (
                {"Content-Type": "text/plain", "Origin": "http://evil.example"},
                {"Content-Type": "application/x-www-form-urlencoded", "Origin": "null"},
                {},
            ):
                response = await http.post(path, headers=headers, content=b"")
                assert response.status_code == 401, (path, headers, response.text)
                assert response.json()["error"] == "unauthorized"
                assert "wf url" in response.json()["message"]

    # A page on another port of this machine is "same site": the browser sends the session cookie,
    # but the page can neither read our CSRF value into a header nor fake its Origin.
    async with httpx.AsyncClient(base_url=board) as http:
        csrf = await session(http)
        for path in UNSAFE_POSTS:
            no_csrf = await http.post(
                path, headers={"Content-Type": "text/plain", "Origin": "http://127.0.0.1:9"}, content=b""
            )
            assert no_csrf.status_code == 403, (path, no_csrf.text)
            wrong_origin = await http.post(
                path, headers={"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:9"}, json={}
            )
            assert wrong_origin.status_code == 403, (path, wrong_origin.text)
            assert "cross-site request refused" in wrong_origin.json()["message"]
            no_origin = await http.post(path, headers={"X-CSRF-Token": csrf}, json={})
            assert no_origin.status_code == 403, (path, no_origin.text)

    assert commands.subjects[before:] == []
    assert await paused(board) is False

    # The same request with the token does pause: the refusals above were the checks, not a broken route.
    async with httpx.AsyncClient(base_url=board, headers=AUTH_HEADERS) as http:
        assert (await http.post("/api/control/pause")).status_code == 200
    assert await eventually(lambda: paused(board), what="the pipeline to pause")


async def test_the_token_is_required_and_must_be_right(board: str) -> None:
    async with httpx.AsyncClient(base_url=board) as http:
        missing = await http.get("/api/projects")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "wf url" in missing.json()["message"]
        for value in (f"Bearer {API_TOKEN}x", "Bearer wrong", f"Basic {API_TOKEN}", API_TOKEN):
            wrong = await http.get("/api/projects", headers={"Authorization": value})
            assert wrong.status_code == 401, value
            assert wrong.json()["message"].startswith("the API token is wrong")
            assert API_TOKEN not in wrong.text
        for path in ("/api/events", "/ui/", "/mcp", "/api//projects"):
            assert (await http.get(path)).status_code == 401, path

        # Public: the health check, the API docs, and the web hooks (signed by the sync bridge instead).
        assert (await http.get("/health")).status_code in (200, 503)
        assert (await http.get("/docs")).status_code == 200
        assert (await http.post("/api/hooks/anything", content=b"")).status_code != 401

        ok = await http.get("/api/projects", headers=AUTH_HEADERS)
        assert ok.status_code == 200
        assert [p["slug"] for p in ok.json()] == ["demo"]


async def test_opening_the_link_sets_the_session_and_drops_the_token(
    board: str, commands: CommandLog
) -> None:
    async with httpx.AsyncClient(base_url=board) as http:
        wrong = await http.get("/?token=not-the-token")
        assert wrong.status_code == 401
        assert "set-cookie" not in wrong.headers

        opened = await http.get(f"/ui/board?project=demo&token={API_TOKEN}")
        assert opened.status_code == 303
        assert opened.headers["location"] == "/ui/board?project=demo"
        assert opened.headers["cache-control"] == "no-store"
        cookies = {c.split("=", 1)[0]: c.lower() for c in opened.headers.get_list("set-cookie")}
        assert "httponly" in cookies["wf_session"]
        assert "samesite=strict" in cookies["wf_session"]
        assert "path=/" in cookies["wf_session"]
        assert "httponly" not in cookies["wf_csrf"]  # the page reads it to send it back as a header
        assert "samesite=strict" in cookies["wf_csrf"]
        assert API_TOKEN.lower() not in " ".join(cookies.values())  # the cookie is not the token
        csrf = http.cookies["wf_csrf"]

        # Reads need only the cookie; writes need the CSRF header and our own Origin (or Referer).
        assert (await http.get("/api/projects")).status_code == 200
        before = len(commands.subjects)
        own = {"X-CSRF-Token": csrf, "Origin": board}
        assert (await http.post("/api/control/pause", headers=own)).status_code == 200
        referer = {"X-CSRF-Token": csrf, "Referer": f"{board}/ui/board"}
        assert (await http.post("/api/control/resume", headers=referer)).status_code == 200
        assert len(commands.subjects) == before + 2

        # A CSRF value that matches its cookie but was not made by this board is refused.
        http.cookies.set("wf_csrf", "made-up.value")
        forged = await http.post(
            "/api/control/pause", headers={"X-CSRF-Token": "made-up.value", "Origin": board}
        )
        assert forged.status_code == 403
        assert len(commands.subjects) == before + 2

    # Without the board's own session cookie, a CSRF pair is worth nothing.
    async with httpx.AsyncClient(base_url=board) as http:
        http.cookies.set("wf_session", "0" * 64)
        assert (await http.get("/api/projects")).status_code == 401


async def test_other_host_names_are_refused(board: str, tmp_path: Path, settings: BoardSettings) -> None:
    async with httpx.AsyncClient(base_url=board, headers=AUTH_HEADERS) as http:
        # DNS rebinding: a page at evil.example resolving to 127.0.0.1 sends its own name as Host.
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.", ""):
            for path in ("/api/projects", "/health", "/"):
                response = await http.get(path, headers={"Host": host})
                assert response.status_code == 421, (host, path)
                assert "board.allowed_hosts" in response.json()["message"]
        for host in ("localhost", "localhost:8000", "127.0.0.1:1234", "[::1]:8000"):
            assert (await http.get("/api/projects", headers={"Host": host})).status_code == 200, host

    config_file = tmp_path / "config.yaml"
    config_file.write_text("board:\n  allowed_hosts: [wf.example.lan]\n")
    named = BoardSettings(
        config=str(config_file),
        nats_url=settings.nats_url,
        database_url=settings.database_url,
        api_token=API_TOKEN,
    )
    async with serve(create_app(named)) as url, httpx.AsyncClient(base_url=url, headers=AUTH_HEADERS) as http:
        assert (await http.get("/api/projects", headers={"Host": "wf.example.lan:8000"})).status_code == 200
        assert (await http.get("/api/projects", headers={"Host": "evil.example"})).status_code == 421


def test_the_board_does_not_start_without_a_token(settings: BoardSettings) -> None:
    from wf_common.errors import ConfigError

    with pytest.raises(ConfigError, match="WF_API_TOKEN"):
        create_app(settings.model_copy(update={"api_token": None}))


def run_wf(*args: str) -> tuple[int, str]:
    """`wf ARGS` in this process (the console script's code); (exit code, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = wf_main(list(args))
    return code, out.getvalue() + err.getvalue()


async def test_the_cli_finds_the_token_by_itself(
    board: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WF_TOKEN", "WF_URL", "WF_DATA_DIR", "WF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./config.yaml with a board.token
    data = tmp_path / "data"

    # Before `wf start` made a token: a 401, and the message says where the token was looked for.
    code, said = await asyncio.to_thread(run_wf, "--url", board, "--data-dir", str(data), "project", "list")
    assert code == 1
    assert "no API token found" in said
    assert str(data / "secrets" / "api-token") in said

    # The token `wf start` keeps in the data dir (here: the board's), found with no flag but --data-dir.
    (data / "secrets").mkdir(parents=True)
    (data / "secrets" / "api-token").write_text(API_TOKEN + "\n")
    code, said = await asyncio.to_thread(run_wf, "--url", board, "--data-dir", str(data), "project", "list")
    assert code == 0, said
    assert str(tmp_path / "demo") in said  # the project's workspace, as listed
    code, said = await asyncio.to_thread(run_wf, "url", "--url", board, "--data-dir", str(data))
    assert (code, said.strip()) == (0, f"{board}/?token={API_TOKEN}")

    # WF_TOKEN wins; a wrong one is a 401 that says which token was sent.
    monkeypatch.setenv("WF_TOKEN", "not-the-token")
    code, said = await asyncio.to_thread(run_wf, "--url", board, "--data-dir", str(data), "project", "list")
    assert code == 1
    assert "the API token is wrong" in said
    assert "is it the token of this board" in said
