"""Where the board listens and who may call it from a browser."""

from __future__ import annotations

import httpx
import pytest
from wf_board_api.app import create_app
from wf_board_api.settings import BoardSettings

from tests.board.conftest import AUTH_HEADERS, BOARD_URL, lifespan_app


def test_listens_on_loopback_by_default_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WF_CONFIG", "WF_BOARD_HOST", "WF_BOARD_PORT"):
        monkeypatch.delenv(name, raising=False)
    defaults = BoardSettings()
    assert (defaults.host(), defaults.port()) == ("127.0.0.1", 8000)

    monkeypatch.setenv("WF_BOARD_HOST", "0.0.0.0")
    monkeypatch.setenv("WF_BOARD_PORT", "8123")
    overridden = BoardSettings()
    assert (overridden.host(), overridden.port()) == ("0.0.0.0", 8123)


async def _preflight(settings: BoardSettings) -> httpx.Response:
    async with lifespan_app(create_app(settings)) as asgi:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url=BOARD_URL, headers=AUTH_HEADERS) as http:
            return await http.options(
                "/api/control/pause",
                headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
            )


async def test_cors_is_off_by_default(settings: BoardSettings) -> None:
    # A web page on another origin cannot make the browser send commands (e.g. approve a deploy).
    response = await _preflight(settings)
    assert "access-control-allow-origin" not in response.headers


async def test_cors_allows_only_configured_origins(settings: BoardSettings) -> None:
    allowed = settings.model_copy(update={"board_cors_origins": ["http://localhost:5173"]})
    assert "access-control-allow-origin" not in (await _preflight(allowed)).headers

    async with lifespan_app(create_app(allowed)) as asgi:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url=BOARD_URL, headers=AUTH_HEADERS) as http:
            response = await http.options(
                "/api/control/pause",
                headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
            )
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
