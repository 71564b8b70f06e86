"""Small pieces of the CLI: text cleaning, tables, health bodies, external servers, key patterns."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from wf_cli.commands import common
from wf_cli.datadir import DataDir
from wf_cli.health import failing_checks
from wf_cli.servers import Servers
from wf_cli.text import clean, table
from wf_common import commands
from wf_common.config import load_config, parse_config
from wf_common.errors import ConfigError
from wf_common.urls import redact_url as redact


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b]0;title\x07after", "after"),  # OSC (window title) with BEL
        ("\x1b]52;c;ZXZpbA==\x1b\\after", "after"),  # OSC 52 (clipboard) with ST
        ("a\rb\x08c\x00d\x7fe", "abcde"),
        ("\x9b2Jx", "x"),  # 8-bit CSI
        ("safe\u202eevil", "safeevil"),  # bidi override
        ("keeps\ttabs\nand newlines", "keeps\ttabs\nand newlines"),
        ("ünïcödé ✓ 日本", "ünïcödé ✓ 日本"),
        ("\x1b", ""),
    ],
)
def test_clean_strips_escapes_and_controls(raw: str, shown: str) -> None:
    assert clean(raw) == shown


def test_clean_oneline_folds_whitespace() -> None:
    assert clean("a\n\tb\r\n c", oneline=True) == "a b c"


def test_table_aligns_columns_without_trailing_spaces() -> None:
    out = table(["A", "LONG HEADER", "C"], [["xx", "y", ""], ["x", "yyyyyyyyyyyyy", "z"]])
    assert out.splitlines() == ["A   LONG HEADER    C", "xx  y", "x   yyyyyyyyyyyyy  z"]


def test_failing_checks_finds_what_is_down() -> None:
    assert failing_checks({"status": "ok", "checks": {"nats": "ok", "database": "ok"}}) == []
    assert failing_checks({"checks": {"nats": "ok", "database": "down: refused"}}) == [
        "database: down: refused"
    ]
    assert failing_checks({"nats": {"ok": False, "error": "no route"}, "database": {"ok": True}}) == [
        "nats: no route"
    ]
    assert failing_checks(
        {"checks": [{"name": "orchestrator", "status": "fail", "message": "no reply"}]}
    ) == ["orchestrator: no reply"]
    assert failing_checks({"checks": {"nats": "ok", "runners": 0}}) == ["runners: 0"]
    assert failing_checks({"checks": {"nats": "ok", "runners": 2}}) == []
    assert failing_checks("plain text") == []


def test_failing_checks_prefers_the_boards_own_explanation() -> None:
    body = {
        "status": "unavailable",
        "checks": {"nats": "ok", "database": "ok", "orchestrator": "no answer within 2s", "runners": 0},
        "error": "unavailable",
        "message": "not ready: orchestrator: no answer within 2s; runners: no heartbeat",
    }
    assert failing_checks(body) == ["not ready: orchestrator: no answer within 2s; runners: no heartbeat"]


def test_the_cli_accepts_exactly_the_keys_the_orchestrator_accepts() -> None:
    # The CLI checks arguments with the shared patterns; what it lets through must validate as a command.
    assert common.task_key(" t-002 ") == "T-002"
    commands.COMMAND_ADAPTER.validate_python({"type": "approve", "project": common.slug("calc"),
                                              "task_key": common.task_key("t-002")})  # fmt: skip
    for bad, check in (("T-2", common.task_key), ("X-001", common.bug_key), ("List Snap", common.slug)):
        with pytest.raises(argparse.ArgumentTypeError, match=r"look like|project slug"):
            check(bad)


def test_stage_order_follows_the_pipeline() -> None:
    cfg = parse_config({"pipeline": {"stages": [{"name": "pm", "agent": "pm", "gate": True},
                                                {"name": "dev", "agent": "dev"}]}})  # fmt: skip
    assert common.stage_order(["dev", "weird", "pm"], cfg) == ["backlog", "pm", "dev", "done", "weird"]


def test_external_servers_are_used_as_given_and_passwords_stay_out_of_run_json(tmp_path: Path) -> None:
    cfg = load_config(None)
    env = {"WF_NATS_URL": "nats://nats.local:4222", "WF_DATABASE_URL": "postgresql://wf:s3cret@db/workflow"}
    servers = Servers(DataDir(tmp_path), cfg, env)
    assert servers.start_nats() == "nats://nats.local:4222"
    assert servers.start_postgres() == "postgresql+asyncpg://wf:s3cret@db/workflow"  # what services get
    state = servers.state()
    assert state["nats"] == {"url": "nats://nats.local:4222", "embedded": False}
    assert state["postgres"] == {"url": "postgresql+asyncpg://wf:***@db/workflow", "embedded": False}
    servers.stop()
    assert not (tmp_path / "nats").exists()
    assert not (tmp_path / "postgres").exists()
    assert redact("nats://host:1") == "nats://host:1"


def test_an_external_database_must_be_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PostgreSQL is required"):
        Servers(DataDir(tmp_path), load_config(None), {"WF_DATABASE_URL": "mysql://x/y"})
