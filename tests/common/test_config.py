"""The configuration file: defaults, ${ENV} interpolation, and errors that name the bad field."""

from pathlib import Path

import pytest
from wf_common.config import load_config, parse_config
from wf_common.errors import ConfigError


def test_defaults_follow_the_seed_pipeline() -> None:
    cfg = load_config(None)
    assert [s.name for s in cfg.pipeline.stages] == ["pm", "dev", "qa", "sec", "docs", "deploy", "testing"]
    gates = [s.name for s in cfg.pipeline.stages if s.gate]
    assert gates == ["pm", "deploy"]  # a human approves the breakdown and the deploy
    assert cfg.pipeline.next_stage("testing") == "done"
    assert cfg.pipeline.rework_limit == 3
    assert cfg.board.host == "127.0.0.1"
    assert cfg.board.port == 8000


def test_seed_hybrid_config_with_env_interpolation(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        """
task_backend:
  adapter: local
  sync_to:
    - adapter: asana
      access_token: ${ASANA_TOKEN}
      project_gid: "1234567890"
llm_backend:
  adapter: ollama
  model: llama3.2:8b
  host: ${OLLAMA_HOST:-http://localhost:11434}
  models: {pm: llama3.2:3b, dev: deepseek-coder:6.7b}
""",
        encoding="utf-8",
    )
    cfg = load_config(path, env={"ASANA_TOKEN": "tok-123"})
    target = cfg.task_backend.sync_to[0]
    assert target.adapter == "asana"
    assert (getattr(target, "access_token", None), getattr(target, "project_gid", None)) == (
        "tok-123",
        "1234567890",
    )
    assert cfg.llm_backend.host == "http://localhost:11434"
    assert cfg.llm_backend.model_for("dev") == "deepseek-coder:6.7b"
    assert cfg.llm_backend.model_for("qa") == "llama3.2:8b"


def test_missing_env_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"llm_backend\.host: environment variable OLLAMA_URL is not set"):
        parse_config({"llm_backend": {"host": "${OLLAMA_URL}"}}, env={})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"llm_backend": {"adapter": "olama"}},
            "llm_backend.adapter: Input should be 'ollama', 'openai' or 'anthropic' (got 'olama')",
        ),
        ({"llm_backend": {"models": {"boss": "x"}}}, "llm_backend.models.boss"),
        (
            {"pipeline": {"rework_limit": -1}},
            "pipeline.rework_limit: Input should be greater than or equal to 0",
        ),
        ({"pipeline": {"stages": [{"name": "dev", "agent": "dev"}]}}, "the first stage must be 'pm'"),
        (
            {
                "pipeline": {
                    "stages": [{"name": "pm", "agent": "pm"}, {"name": "qa", "agent": "qa", "on_fail": "x"}]
                }
            },
            "on_fail must name an earlier work stage",
        ),
        ({"runner": {"stages": ["dev", "nope"]}}, "runner.stages: unknown stage(s) ['nope']"),
        ({"board": {"port": 70000}}, "board.port"),
        ({"runner": {"heartbeat_seconds": 20}}, "runner.heartbeat_seconds (20) must be at most a third"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_bad_config_names_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data, source="config.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("config.yaml: ")


def test_missing_and_malformed_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm_backend: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_the_shipped_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.yaml"
    cfg = load_config(example, env={})
    assert cfg.llm_backend.host == "http://localhost:11434"
    assert cfg.llm_backend.model_for("pm") == "llama3.2:8b"
    assert cfg.runner.count == 2
