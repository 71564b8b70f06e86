"""The configuration file (`config.yaml`): its schema, `${ENV}` interpolation and loading.

Every service reads the same file. Errors name the bad field and the allowed values, e.g.
``config.yaml: llm_backend.adapter: Input should be 'ollama', 'openai' or 'anthropic' (got 'olama')``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

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
_SECRET_FIELDS = frozenset({"token", "password", "secret", "api_key"})
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


ADAPTERS = ("ollama", "openai", "anthropic")
# Where each adapter's server is when `host` (or its alias `base_url`) is not given. For `openai` the
# base URL includes the API version, as the OpenAI SDKs expect: requests go to `<base_url>/chat/completions`.
DEFAULT_HOSTS = {
    "ollama": "http://localhost:11434",
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}


class LLMBackendConfig(_Strict):
    """One model backend. `llm_backend` is the default one; `llm_backends` names more of them.

    `models` maps a role to a model name on this backend, or to the name of an `llm_backends` entry.
    `fallback` is a chain of entries (full blocks or names of `llm_backends` entries), tried in order
    when the one before is unreachable; a single block is accepted as a chain of one.
    """

    adapter: Literal["ollama", "openai", "anthropic"] = "ollama"
    model: str = "qwen2.5-coder:7b"
    host: str = ""  # alias: base_url; empty means the adapter's default (DEFAULT_HOSTS)
    # Never written to logs, events or errors (SecretStr); use ${ENV} interpolation in config.yaml.
    api_key: SecretStr | None = None
    num_ctx: int = Field(8192, ge=512, le=1_048_576)
    max_tokens: int = Field(4096, ge=1, le=1_000_000)  # completion cap (Anthropic requires one)
    timeout_seconds: float = Field(300, gt=0)
    # Rate-limit / overload answers (429, 529, 503) are retried this many times, honouring Retry-After.
    max_retries: int = Field(3, ge=0, le=20)
    # "auto": native tool calls when the start-up check finds the model supports them, else emulated
    # in the prompt; "native" / "emulated" force one.
    tool_calls: Literal["auto", "native", "emulated"] = "auto"
    # One model per kind of work, as the seed's model table suggests: {pm: llama3.2:8b, dev: ...}.
    models: dict[Role, str] = Field(default_factory=dict)
    fallback: list[LLMBackendConfig | str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "base_url" in data:
                data = dict(data)
                if data.get("host"):
                    raise ValueError("give host or base_url (the same setting), not both")
                data["host"] = data.pop("base_url")
            if isinstance(data.get("fallback"), dict | str | BaseModel):
                data = {**data, "fallback": [data["fallback"]]}
            elif data.get("fallback", ()) is None:
                data = {**data, "fallback": []}
        return data

    @field_validator("host")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, e.g. http://localhost:11434")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _default_host(self) -> LLMBackendConfig:
        if not self.host:
            self.host = DEFAULT_HOSTS[self.adapter]
        return self

    @property
    def base_url(self) -> str:
        return self.host

    def model_for(self, role: str) -> str:
        return next((m for r, m in self.models.items() if r == role), self.model)

    def describe(self) -> str:
        """For messages and logs: adapter, URL and model, never the key."""
        return f"{self.adapter} {self.host} ({self.model})"


class ModelPrice(_Strict):
    """US dollars per million tokens."""

    prompt_usd_per_mtok: float = Field(0.0, ge=0)
    completion_usd_per_mtok: float = Field(0.0, ge=0)


class BudgetConfig(_Strict):
    """Caps that stop new work when reached (None = no cap). Tokens are prompt + completion."""

    task_tokens: int | None = Field(None, ge=1)
    task_usd: float | None = Field(None, gt=0)
    project_tokens: int | None = Field(None, ge=1)
    project_usd: float | None = Field(None, gt=0)

    def is_set(self) -> bool:
        """Whether any cap is set (without one, nothing needs checking before new work)."""
        caps = (self.task_tokens, self.task_usd, self.project_tokens, self.project_usd)
        return any(v is not None for v in caps)


class CostConfig(_Strict):
    # Model name (as the backend reports it in usage, e.g. "gpt-4o-mini") -> price. Unpriced models
    # count tokens and time but no money.
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    budgets: BudgetConfig = Field(default_factory=BudgetConfig)

    def cost_usd(self, model: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Money for this usage, or None when the model has no price."""
        price = self.prices.get(model or "")
        if price is None:
            return None
        return (
            prompt_tokens * price.prompt_usd_per_mtok + completion_tokens * price.completion_usd_per_mtok
        ) / 1e6


TARGET_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def _api_url(v: str) -> str:
    if not v.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return v.rstrip("/")


class _SyncTargetBase(_Strict):
    """What every tracker the sync bridge mirrors to shares (`task_backend.sync_to[i]`)."""

    # Names the target in `wf sync status`, the bridge's tables and its webhook path; default: the adapter.
    name: str | None = None
    # The service's API root; the default is its public API. Self-hosted servers and tests set it.
    base_url: str | None = None
    # Local projects mirrored to this target; empty means every project.
    projects: list[str] = Field(default_factory=list)
    # Local stage -> remote section/status/label/state name; unmapped stages use their own name.
    stages: dict[str, str] = Field(default_factory=dict)
    poll_interval_seconds: float = Field(30.0, gt=0)
    # A poll asks for changes since the last cursor minus this overlap (clocks and indexes lag).
    poll_overlap_seconds: float = Field(60.0, ge=0)
    reconcile_interval_seconds: float = Field(3600.0, gt=0)
    # Deletes unlink by default (both items stay). true: a task cancelled here deletes its item there
    # (GitHub: closed as not planned), and an item deleted there cancels the task here (cancel_task).
    propagate_deletes: bool = False
    # Shared secret of the service's webhooks (checked over the raw body); None = polling only.
    webhook_secret: str | None = Field(None, min_length=8)
    timeout_seconds: float = Field(20.0, gt=0)
    max_attempts: int = Field(8, ge=1, le=100)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not TARGET_NAME.match(v):
            raise ValueError(
                f"{v!r} must be lowercase letters, digits, - or _ (max 40), starting with a letter"
            )
        return v

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        return None if v is None else _api_url(v)

    @property
    def target_name(self) -> str:
        return self.name or self.adapter  # type: ignore[attr-defined]

    def remote_stage(self, stage: str) -> str:
        return self.stages.get(stage, stage)

    def api_url(self) -> str:
        return self.base_url or self.default_base_url()

    def default_base_url(self) -> str:
        raise NotImplementedError


class AsanaTarget(_SyncTargetBase):
    adapter: Literal["asana"]
    access_token: str = Field(min_length=1)
    project_gid: str = Field(pattern=r"^[0-9]+$")

    def default_base_url(self) -> str:
        return "https://app.asana.com/api/1.0"


class JiraTarget(_SyncTargetBase):
    adapter: Literal["jira"]
    url: str
    email: str = Field(min_length=3)
    api_token: str = Field(min_length=1)
    project_key: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,9}$")
    issue_type: str = "Task"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _api_url(v)

    def default_base_url(self) -> str:
        return self.url


class GithubTarget(_SyncTargetBase):
    adapter: Literal["github"]
    owner: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$")
    repo: str = Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")
    token: str = Field(min_length=1)

    def default_base_url(self) -> str:
        return "https://api.github.com"


class LinearTarget(_SyncTargetBase):
    adapter: Literal["linear"]
    # The team's key (e.g. ENG), as in issue identifiers ENG-12.
    team: str = Field(pattern=r"^[A-Za-z0-9]{1,10}$")
    key: str = Field(min_length=1, description="a Linear API key")

    def default_base_url(self) -> str:
        return "https://api.linear.app"


SyncTarget = Annotated[AsanaTarget | JiraTarget | GithubTarget | LinearTarget, Field(discriminator="adapter")]


class TaskBackendConfig(_Strict):
    adapter: Literal["local"] = "local"
    sync_to: list[SyncTarget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> TaskBackendConfig:
        names = [t.target_name for t in self.sync_to]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(
                f"task_backend.sync_to: two targets are named {dupes}; give each a distinct `name`"
            )
        return self


CLI_PRESETS: dict[str, str] = {
    # External coding agents as a stage's executor. `{prompt_file}` is replaced by the shell-quoted
    # path of the file holding the prompt the role's agent would get; the prompt itself is never put
    # into the command line unquoted (`"$(cat …)"` keeps it one argument, not re-parsed by the shell).
    "goose": "goose run --no-session -i {prompt_file}",
    "aider": "aider --message-file {prompt_file} --yes-always --no-auto-commits",
    "claude": 'claude -p "$(cat {prompt_file})"',
    "codex": "codex exec - < {prompt_file}",
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]*)\}")


class ExecutorConfig(_Strict):
    """Who does a stage's work: the built-in agent for its role, or an external coding agent CLI run
    in the job's sandbox (`kind: cli`), judged by the workspace it leaves (diff, tests)."""

    kind: Literal["agent", "cli"] = "agent"
    preset: Literal["goose", "aider", "claude", "codex"] | None = None
    command: str | None = None  # a template with {prompt_file}; overrides the preset
    timeout_seconds: float = Field(600, gt=0)

    @model_validator(mode="after")
    def _command(self) -> ExecutorConfig:
        if self.kind == "agent":
            return self
        template = self.template
        if not template:
            raise ValueError(
                "executor.kind 'cli' needs executor.command (e.g. \"goose run -i {prompt_file}\") or "
                f"executor.preset (one of {sorted(CLI_PRESETS)})"
            )
        unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - {"prompt_file"})
        if unknown:
            raise ValueError(
                f"executor.command: unknown placeholder(s) {unknown}; only {{prompt_file}} exists"
            )
        if "{prompt_file}" not in template:
            raise ValueError("executor.command must contain {prompt_file} (where the prompt is)")
        return self

    @property
    def template(self) -> str:
        return self.command or (CLI_PRESETS[self.preset] if self.preset else "")


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
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

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
    # Jobs of one project running at once; each task works in its own git worktree (see `git`).
    max_parallel_per_project: int = Field(3, ge=1, le=1000)
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
    # Who holds the token: every command sent through the board API with it (the CLI, the web
    # board, MCP clients) is recorded as `human:<owner>`; a request cannot claim anyone else.
    owner: str = Field("owner", min_length=1, max_length=30, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")

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


class OrchestratorConfig(_Strict):
    # How many orchestrator processes `wf start` runs: one is active (it holds the lease), the others
    # are hot standbys that take over within `lease_ttl_seconds` when it dies.
    replicas: int = Field(1, ge=1, le=3)
    lease_ttl_seconds: float = Field(6.0, ge=1, le=300)
    # A Result whose apply fails this many times is terminated and its task failed with the reason.
    result_apply_tries: int = Field(5, ge=1, le=100)


class BusConfig(_Strict):
    ack_wait_seconds: float = Field(30.0, gt=0)
    max_deliver: int = Field(5, ge=1, le=100)
    events_max_age_days: float = Field(30, gt=0)
    events_max_bytes: int = Field(1 << 30, ge=1 << 20)
    # A runner whose heartbeat is older than this drops out of wf_runners (and out of /health).
    runners_ttl_seconds: float = Field(30.0, ge=3)


class SandboxProjectConfig(_Strict):
    # Per-project opt-ins: network access inside the sandbox, and an image of the project's own.
    network: bool = False
    image: str | None = None


class SandboxConfig(_Strict):
    """Where agent commands run (`run` tool, test command, scanners). `auto`: docker if an engine
    answers, else bubblewrap if installed, else agent jobs are refused. `none` runs them on the host
    (fresh HOME, minimal environment, own process group) and warns on every job."""

    backend: Literal["auto", "docker", "bubblewrap", "none"] = "auto"
    image: str = "wf-sandbox:latest"
    memory_mb: int = Field(1024, ge=16, le=1_048_576)
    cpus: float = Field(1.0, gt=0, le=256)
    pids: int = Field(256, ge=8, le=1_000_000)
    tmp_mb: int = Field(256, ge=1, le=65536)
    # `run` tool: default and maximum timeout of one command (seconds), output kept per stream.
    run_timeout_seconds: float = Field(120, gt=0)
    run_timeout_max_seconds: float = Field(600, gt=0)
    output_limit_chars: int = Field(20_000, ge=200, le=10_000_000)
    # Extra host paths bubblewrap binds read-only (e.g. a toolchain outside /usr).
    bubblewrap_ro_paths: list[str] = Field(default_factory=list)
    # bubblewrap: a Python venv with the agents' tools (bandit, pip-audit, pytest, playwright; made by
    # `make sandbox-tools` at .tools/sandbox), bound read-only at the same path with its bin/ first on
    # PATH. Docker images carry the tools themselves (deploy/sandbox/Dockerfile).
    tools_dir: str | None = None
    # docker: the engine network a project that opts into `network: true` is attached to. `bridge` (the
    # engine's default NAT network) when the engine has one; `host` shares this machine's network (as
    # bubblewrap's network opt-in does); or a network you made (`docker network create`).
    docker_network: str = Field("bridge", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    projects: dict[str, SandboxProjectConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _timeouts(self) -> SandboxConfig:
        if self.run_timeout_max_seconds < self.run_timeout_seconds:
            raise ValueError(
                f"sandbox.run_timeout_max_seconds ({self.run_timeout_max_seconds:g}) must be at least "
                f"sandbox.run_timeout_seconds ({self.run_timeout_seconds:g})"
            )
        return self

    def for_project(self, slug: str) -> SandboxProjectConfig:
        return self.projects.get(slug, SandboxProjectConfig())


class AgentProjectConfig(_Strict):
    # TESTING: the end-to-end command run in the sandbox after deploy (e.g. "python3 e2e/test_ui.py");
    # unset: the stage says "skipped: no E2E command configured".
    e2e_command: str | None = None
    e2e_timeout_seconds: float = Field(600, gt=0)
    # Where the E2E command leaves screenshots, traces and logs (Playwright's default: test-results).
    e2e_artifacts_dir: str = "test-results"


class AgentsConfig(_Strict):
    """What the role agents need per project (`agents.projects.<slug>`)."""

    projects: dict[str, AgentProjectConfig] = Field(default_factory=dict)

    def for_project(self, slug: str) -> AgentProjectConfig:
        return self.projects.get(slug, AgentProjectConfig())


class GuardConfig(_Strict):
    """Loop guards: when one trips the agent stops and the task goes to needs-human with the reason."""

    # Total model tokens (prompt + completion) one execution / one task (all its executions) may use;
    # 0 = no limit.
    tokens_per_execution: int = Field(0, ge=0)
    tokens_per_task: int = Field(0, ge=0)
    # The same tool call (name and arguments) this many times in one execution stops the agent.
    repeated_tool_calls: int = Field(4, ge=2, le=100)


class GitConfig(_Strict):
    """Task branches and worktrees (`wf/<KEY>`), checkpoints, and the merge at the deploy gate."""

    # Where task worktrees live: unset = <workspace>/.workflow/worktrees/<KEY>; a directory (e.g. the
    # data directory's worktrees/) = <dir>/<project>/<KEY>.
    worktrees_dir: str | None = None
    # The branch tasks start from and merge into; unset = the branch checked out in the workspace.
    main_branch: str | None = Field(None, min_length=1, max_length=200)
    # Approving this gate merges the task's branch into the main branch (a conflict sends it to DEV).
    merge_stage: str = "deploy"
    # Pushed to after a merge when the workspace repository has this remote; offline, retried.
    remote: str = Field("origin", min_length=1, max_length=200)
    push_retry_delays: list[float] = Field(default_factory=lambda: [5.0, 30.0, 120.0, 600.0], min_length=1)


class WorkflowConfig(_Strict):
    task_backend: TaskBackendConfig = Field(default_factory=TaskBackendConfig)
    llm_backend: LLMBackendConfig = Field(default_factory=LLMBackendConfig)
    # Named backends that `llm_backend.models`, `models` of other entries and `fallback` may refer to.
    llm_backends: dict[str, LLMBackendConfig] = Field(default_factory=dict)
    cost: CostConfig = Field(default_factory=CostConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    nats: EndpointConfig = Field(default_factory=EndpointConfig)
    database: EndpointConfig = Field(default_factory=EndpointConfig)
    board: BoardConfig = Field(default_factory=BoardConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    bus: BusConfig = Field(default_factory=BusConfig)
    orchestrator: OrchestratorConfig = Field(default_factory=OrchestratorConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    guards: GuardConfig = Field(default_factory=GuardConfig)
    git: GitConfig = Field(default_factory=GitConfig)
    agents: AgentsConfig = Field(default_factory=AgentsConfig)

    @model_validator(mode="after")
    def _runner_heartbeat(self) -> WorkflowConfig:
        if self.runner.heartbeat_seconds * 3 > self.bus.runners_ttl_seconds:
            raise ValueError(
                f"runner.heartbeat_seconds ({self.runner.heartbeat_seconds:g}) must be at most a third of "
                f"bus.runners_ttl_seconds ({self.bus.runners_ttl_seconds:g}), or live runners would expire"
            )
        return self

    @model_validator(mode="after")
    def _backend_names(self) -> WorkflowConfig:
        known = sorted(self.llm_backends)

        def check(entry: LLMBackendConfig, where: str, seen: tuple[str, ...]) -> None:
            for i, fb in enumerate(entry.fallback):
                if isinstance(fb, str):
                    if fb not in self.llm_backends:
                        raise ValueError(
                            f"{where}.fallback[{i}]: unknown backend {fb!r}; define it under llm_backends "
                            f"(defined: {known})"
                        )
                    if fb in seen:
                        raise ValueError(f"{where}.fallback[{i}]: backend {fb!r} falls back to itself")
                    check(self.llm_backends[fb], f"llm_backends.{fb}", (*seen, fb))
                else:
                    check(fb, f"{where}.fallback[{i}]", seen)

        check(self.llm_backend, "llm_backend", ())
        for name, entry in self.llm_backends.items():
            check(entry, f"llm_backends.{name}", (name,))
        return self

    def llm_chain(self, role: str) -> list[tuple[LLMBackendConfig, str]]:
        """The backends an agent of `role` uses, in fallback order (see `backend_chain`)."""
        return backend_chain(self.llm_backend, self.llm_backends, role)

    @model_validator(mode="after")
    def _sync_stages(self) -> WorkflowConfig:
        known = [ENTRY_STAGE, *(s.name for s in self.pipeline.stages), FINAL_STAGE]
        for t in self.task_backend.sync_to:
            bad = [s for s in t.stages if s not in known]
            if bad:
                raise ValueError(
                    f"task_backend.sync_to[{t.target_name}].stages: unknown stage(s) {bad}; allowed: {known}"
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


def backend_chain(
    default: LLMBackendConfig, backends: dict[str, LLMBackendConfig], role: str
) -> list[tuple[LLMBackendConfig, str]]:
    """The backends an agent of `role` uses, in fallback order, each with the model to ask for.

    `default.models[role]` may name a `backends` entry: that entry (and its own fallback chain) comes
    first, then `default` with its own model and its fallback chain as the last resort.
    """
    chain: list[tuple[LLMBackendConfig, str]] = []
    seen: set[int] = set()

    def add(entry: LLMBackendConfig) -> None:
        if id(entry) in seen:
            return
        seen.add(id(entry))
        wanted = entry.model_for(role)
        named = backends.get(wanted)
        if named is not None and named is not entry:
            add(named)  # the role's own backend first; this entry's default model after it
            wanted = entry.model
        chain.append((entry, wanted))
        for fb in entry.fallback:
            if isinstance(fb, str):
                if fb in backends:
                    add(backends[fb])
            else:
                add(fb)

    add(default)
    return chain


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
