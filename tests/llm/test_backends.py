"""Backends from config: named entries, per-role backends, fallback chains across adapters, the
start-up capability check, and API keys kept out of messages."""

from __future__ import annotations

import logging
import re

import pytest
from wf_agent_runner.llm import build_adapter
from wf_agent_runner.llm.checks import check_backends
from wf_common.config import parse_config
from wf_common.errors import ConfigError

from tests.fakes.anthropic import ScriptedAnthropic
from tests.fakes.ollama import Reply
from tests.fakes.openai import ScriptedOpenAI
from tests.llm.common import KEY, USER, dead_url
from tests.llm.test_toolcalls import OllamaWithoutTools


def test_old_config_files_still_load() -> None:
    cfg = parse_config(
        {"llm_backend": {"host": "http://h:11434", "fallback": {"host": "http://other:11434", "model": "m"}}}
    )
    assert cfg.llm_backend.adapter == "ollama"
    assert [(e.host, m) for e, m in cfg.llm_chain("dev")] == [
        ("http://h:11434", "qwen2.5-coder:7b"),
        ("http://other:11434", "m"),
    ]


def test_named_backends_per_role_and_defaults() -> None:
    cfg = parse_config(
        {
            "llm_backend": {"model": "qwen2.5-coder:7b", "models": {"pm": "claude"}, "fallback": ["groq"]},
            "llm_backends": {
                "claude": {
                    "adapter": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "api_key": "${ANTHROPIC_API_KEY}",
                },
                "groq": {
                    "adapter": "openai",
                    "base_url": "https://groq.example/openai/v1",
                    "model": "llama-3.3-70b",
                },
            },
        },
        env={"ANTHROPIC_API_KEY": KEY},
    )
    chain = [(e.adapter, e.host, m) for e, m in cfg.llm_chain("pm")]
    assert chain == [
        ("anthropic", "https://api.anthropic.com", "claude-sonnet-4-5"),
        ("ollama", "http://localhost:11434", "qwen2.5-coder:7b"),
        ("openai", "https://groq.example/openai/v1", "llama-3.3-70b"),
    ]
    assert [e.adapter for e, _ in cfg.llm_chain("dev")] == ["ollama", "openai"]
    assert KEY not in repr(cfg)
    assert KEY not in cfg.model_dump_json()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"llm_backend": {"fallback": ["nope"]}}, "llm_backend.fallback[0]: unknown backend 'nope'"),
        (
            {"llm_backends": {"a": {"fallback": ["a"]}}},
            "llm_backends.a.fallback[0]: backend 'a' falls back to itself",
        ),
        ({"llm_backend": {"host": "h", "base_url": "http://x"}}, "give host or base_url"),
        ({"llm_backends": {"x": {"adapter": "groq"}}}, "llm_backends.x.adapter"),
        ({"llm_backend": {"tool_calls": "sometimes"}}, "llm_backend.tool_calls"),
    ],
)
def test_bad_backend_config_names_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(data)


def test_a_bad_key_value_is_not_echoed() -> None:
    with pytest.raises(ConfigError, match=r"llm_backend\.api_key") as err:
        parse_config({"llm_backend": {"api_key": ["sk-secret-value-123"]}})
    assert "sk-secret-value-123" not in str(err.value)


async def test_fallback_chain_across_adapters() -> None:
    with ScriptedOpenAI(models=("m",)) as openai, ScriptedAnthropic(models=("c",), api_key=KEY) as claude:
        claude.queue(Reply.text("from claude"))
        cfg = parse_config(
            {
                "llm_backend": {
                    "adapter": "openai",
                    "base_url": f"{dead_url()}/v1",
                    "model": "m",
                    "fallback": ["down", "claude"],
                },
                "llm_backends": {
                    "down": {"adapter": "ollama", "host": dead_url()},
                    "claude": {
                        "adapter": "anthropic",
                        "base_url": claude.base_url,
                        "model": "c",
                        "api_key": KEY,
                    },
                },
            }
        )
        async with build_adapter(cfg.llm_backend, "dev", cfg.llm_backends) as llm:
            assert (await llm.chat(USER)).content == "from claude"
        assert openai.requests == []


async def test_start_up_check_reports_each_backend(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with (
        OllamaWithoutTools(models=("gemma2:2b",)) as plain,
        ScriptedOpenAI(models=("m",), api_key=KEY) as openai,
    ):
        cfg = parse_config(
            {
                "llm_backend": {"host": plain.url, "model": "gemma2:2b", "models": {"dev": "cloud"}},
                "llm_backends": {
                    "cloud": {"adapter": "openai", "base_url": openai.base_url, "model": "m", "api_key": KEY}
                },
            }
        )
        found = await check_backends(cfg, ["pm", "dev"])

    assert len(found) == 2
    assert "NO native tool support: using emulated tool calls" in caplog.text
    assert f"openai {openai.base_url} model m: model m listed; native tool calls" in caplog.text
    assert KEY not in caplog.text
