"""The configuration file (`config.yaml`): its schema, `${ENV}` interpolation and loading.

Every service reads the same file. Errors name the bad field and the allowed values, e.g.
``config.yaml: llm_backend.adapter: Input should be 'ollama' (got 'olama')``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from wf_common.errors import ConfigError

ROLES = ("pm", "dev", "qa", "sec", "docs", "testing")
Role = Literal["pm", "dev", "qa", "sec", "docs", "testing"]
# Stages every pipeline has around the configured ones.
ENTRY_STAGE = "backlog"
FINAL_STAGE = "done"
STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,19}$")

# Fields whose value an error message must not repeat.
_SECRET_FIELDS = frozenset({"token", "password", "secret"})
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMBackendConfig(_Strict):
    adapter: Literal["ollama"] = "ollama"
    model: str = "qwen2.5-coder:7b"
    host: str = "http://localhost:11434"
    num_ctx: int = Field(8192, ge=512, le=1_048_576)
    timeout_seconds: float = Field(300, gt=0)
    # One model per kind of work, as the seed's model table suggests: {pm: llama3.2:8b, dev: ...}.
    models: dict[Role, str] = Field(default_factory=dict)
    fallback: LLMBackendConfig | None = None

    @field_validator("host")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, e.g. http://localhost:11434")
        return v.rstrip("/")

    def model_for(self, role: str) -> str:
        return next((m for r, m in self.models.items() if r == role), self.model)


class SyncTarget(_Strict):
    # The sync bridge arrives in a later issue; accept its block so configs can be written today.
    model_config = ConfigDict(extra="allow")
    adapter: Literal["asana", "jira", "github", "linear"]


class TaskBackendConfig(_Strict):
    adapter: Literal["local"] = "local"
    sync_to: list[SyncTarget] = Field(default_factory=list)


class StageConfig(_Strict):
    """One column of the board. `agent` runs the stage; `gate` makes a human approve before moving on."""

    name: str
    agent: Role | None = None
    gate: bool = False
    # Where a failed verdict sends the task (with a bug); None means a failure needs a human.
    on_fail: str | None = None
    # Work-in-progress limit: jobs of this stage running at once across all runners.
    wip_limit: int = Field(4, ge=1, le=1000)
    timeout_seconds: int = Field(900, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not STAGE_NAME.match(v) or v in (ENTRY_STAGE, FINAL_STAGE):
            raise ValueError(
                f"stage name {v!r} must be lowercase letters/digits/_ (max 20) and not "
                f"'{ENTRY_STAGE}' or '{FINAL_STAGE}', which every pipeline has implicitly"
            )
        return v


def default_stages() -> list[StageConfig]:
    return [
        StageConfig(name="pm", agent="pm", gate=True),
        StageConfig(name="dev", agent="dev"),
        StageConfig(name="qa", agent="qa", on_fail="dev"),
        StageConfig(name="sec", agent="sec", on_fail="dev"),
        StageConfig(name="docs", agent="docs", on_fail="dev"),
        StageConfig(name="deploy", agent=None, gate=True),
        StageConfig(name="testing", agent="testing", on_fail="dev"),
    ]


class PipelineConfig(_Strict):
    stages: list[StageConfig] = Field(default_factory=default_stages)
    rework_limit: int = Field(3, ge=0, le=100)
    max_turns: int = Field(30, ge=1, le=500)
    schema_retries: int = Field(2, ge=0, le=10)
    # Jobs of one project running at once. They share one git working tree, so the default is 1.
    max_parallel_per_project: int = Field(1, ge=1, le=1000)
    default_test_command: str = "python -m pytest"

    @model_validator(mode="after")
    def _check(self) -> PipelineConfig:
        names = [s.name for s in self.stages]
        if not names:
            raise ValueError("pipeline.stages must list at least one stage")
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline.stages has duplicate names: {names}")
        if names[0] != "pm" or self.stages[0].agent != "pm":
            raise ValueError("the first stage must be 'pm' with agent 'pm' (it turns ideas into tasks)")
        for i, s in enumerate(self.stages):
            if s.agent is None and not s.gate:
                raise ValueError(f"stage {s.name!r} has no agent and no gate; give it one of them")
            if s.on_fail is not None:
                earlier = names[1:i]
                if s.on_fail not in earlier:
                    raise ValueError(
                        f"stage {s.name!r}: on_fail must name an earlier work stage, one of {earlier}"
                    )
        return self

    def stage(self, name: str) -> StageConfig | None:
        return next((s for s in self.stages if s.name == name), None)

    @property
    def work_stages(self) -> list[str]:
        """Stages a task made by the PM walks through, in order (everything after pm)."""
        return [s.name for s in self.stages[1:]]

    def next_stage(self, name: str) -> str:
        names = [s.name for s in self.stages]
        i = names.index(name)
        return names[i + 1] if i + 1 < len(names) else FINAL_STAGE

    @property
    def agent_stages(self) -> list[str]:
        return [s.name for s in self.stages if s.agent]


class EndpointConfig(_Strict):
    # None means "embedded": `wf start` runs the server itself under the data directory.
    url: str | None = None


class BoardConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # The API token; unset = `wf start` generates one in <data dir>/secrets/api-token.
    # SecretStr: it never shows in a repr, a log line or a validation error.
    token: SecretStr | None = None
    # Host names the board answers to besides 127.0.0.1, localhost, [::1] and `host`
    # (a request with any other Host header is refused: that closes DNS rebinding).
    allowed_hosts: list[str] = Field(default_factory=list)

    @field_validator("token")
    @classmethod
    def _long_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (or leave it unset and wf start makes one)")
        return v

    @field_validator("allowed_hosts")
    @classmethod
    def _bare_hosts(cls, v: list[str]) -> list[str]:
        bad = [h for h in v if not h or any(c in h for c in "/@ ") or h.count(":") == 1]
        if bad:
            raise ValueError(f"host names only, without scheme or port: {bad}")
        return [h.lower().strip("[]") for h in v]


class RunnerConfig(_Strict):
    # How many agent-runner processes `wf start` runs, and which stages they serve ("all" or names).
    count: int = Field(2, ge=1, le=64)
    stages: list[str] | Literal["all"] = "all"
    # Delays before a job whose model server was unreachable is tried again (seconds).
    retry_delays: list[float] = Field(default_factory=lambda: [5.0, 15.0, 30.0])
    heartbeat_seconds: float = Field(10.0, gt=0)


class BusConfig(_Strict):
    ack_wait_seconds: float = Field(30.0, gt=0)
    max_deliver: int = Field(5, ge=1, le=100)
    events_max_age_days: float = Field(30, gt=0)
    events_max_bytes: int = Field(1 << 30, ge=1 << 20)
    # A runner whose heartbeat is older than this drops out of wf_runners (and out of /health).
    runners_ttl_seconds: float = Field(30.0, ge=3)


class WorkflowConfig(_Strict):
    task_backend: TaskBackendConfig = Field(default_factory=TaskBackendConfig)
    llm_backend: LLMBackendConfig = Field(default_factory=LLMBackendConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    nats: EndpointConfig = Field(default_factory=EndpointConfig)
    database: EndpointConfig = Field(default_factory=EndpointConfig)
    board: BoardConfig = Field(default_factory=BoardConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    bus: BusConfig = Field(default_factory=BusConfig)

    @model_validator(mode="after")
    def _runner_heartbeat(self) -> WorkflowConfig:
        if self.runner.heartbeat_seconds * 3 > self.bus.runners_ttl_seconds:
            raise ValueError(
                f"runner.heartbeat_seconds ({self.runner.heartbeat_seconds:g}) must be at most a third of "
                f"bus.runners_ttl_seconds ({self.bus.runners_ttl_seconds:g}), or live runners would expire"
            )
        return self

    @model_validator(mode="after")
    def _runner_stages(self) -> WorkflowConfig:
        if isinstance(self.runner.stages, list):
            known = self.pipeline.agent_stages
            bad = [s for s in self.runner.stages if s not in known]
            if bad:
                raise ValueError(f"runner.stages: unknown stage(s) {bad}; allowed: {known} or 'all'")
        return self


def interpolate(value: Any, env: dict[str, str] | None = None, *, where: str = "") -> Any:
    """Replace `${NAME}` and `${NAME:-default}` in every string of a parsed YAML tree."""
    if env is None:
        env = dict(os.environ)
    if isinstance(value, dict):
        return {k: interpolate(v, env, where=f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{where}: environment variable {name} is not set; export it or write ${{{name}:-default}}"
            )

        return _ENV_REF.sub(sub, value)
    return value


def _format_errors(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        got = e.get("input")
        secret = any(str(p) in _SECRET_FIELDS for p in e["loc"])
        shown = "" if secret or isinstance(got, dict | list) else f" (got {got!r})"
        lines.append(f"{source}: {loc or '(top level)'}: {e['msg']}{shown}")
    return "\n".join(lines)


def parse_config(data: Any, *, source: str = "config", env: dict[str, str] | None = None) -> WorkflowConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return WorkflowConfig.model_validate(interpolate(data, env))
    except ValidationError as err:
        raise ConfigError(_format_errors(source, err)) from None


def load_config(path: str | Path | None, *, env: dict[str, str] | None = None) -> WorkflowConfig:
    """Load `path`; None or a missing default file gives the built-in defaults."""
    if path is None:
        return parse_config({}, source="defaults", env=env)
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such config file; create it (see config.example.yaml) or pass --config")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    return parse_config(data, source=str(p), env=env)
