"""`board.token` and `board.allowed_hosts` in config.yaml: validated, and the token never shown."""

from __future__ import annotations

import pytest
from wf_common.config import parse_config
from wf_common.errors import ConfigError


def test_the_token_comes_from_the_environment_and_is_never_shown() -> None:
    token = "a-long-enough-token-1234567890"
    cfg = parse_config({"board": {"token": "${WF_BOARD_TOKEN}"}}, env={"WF_BOARD_TOKEN": token})
    assert cfg.board.token is not None
    assert cfg.board.token.get_secret_value() == token
    assert token not in repr(cfg)
    assert token not in str(cfg.model_dump())


def test_a_short_token_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError, match=r"board\.token: .*at least 16 characters") as failed:
        parse_config({"board": {"token": "short-secret"}})
    assert "short-secret" not in str(failed.value)


def test_allowed_hosts_are_bare_names() -> None:
    cfg = parse_config({"board": {"allowed_hosts": ["WF.Example.lan", "[fd00::1]"]}})
    assert cfg.board.allowed_hosts == ["wf.example.lan", "fd00::1"]
    for bad in ("wf.example.lan:8000", "http://wf.example.lan", ""):
        with pytest.raises(ConfigError, match=r"board\.allowed_hosts: .*host names only"):
            parse_config({"board": {"allowed_hosts": [bad]}})
