"""The agent runner's process settings (environment `WF_*`), on top of the shared ServiceSettings.

- WF_RUNNER_ID: name in the wf_runners bucket and on results (default <hostname>-<pid>)
- WF_STAGES: comma list of stages to serve, overriding config runner.stages (e.g. "dev,qa"; "all")
- WF_CONCURRENCY: jobs this runner works on at once, across all its stages (default 1)
- WF_DRAIN_SECONDS: on SIGTERM, how long in-flight jobs may finish before they are nak'ed (5)
- WF_TEST_TIMEOUT_SECONDS: limit for one run of a project's test command (600)
Plus the shared ones: WF_CONFIG, WF_NATS_URL, WF_LOG_LEVEL, WF_LOG_JSON.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode
from wf_common.errors import ConfigError
from wf_common.settings import ServiceSettings

_KV_KEY_UNSAFE = re.compile(r"[^-/_=.a-zA-Z0-9]+")


def default_runner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class RunnerSettings(ServiceSettings):
    runner_id: str = Field(default_factory=default_runner_id, min_length=1, max_length=200)
    stages: Annotated[list[str] | None, NoDecode] = None
    concurrency: int = Field(1, ge=1, le=64)
    # Under the 10s that `wf start` and docker give a stopping service before SIGKILL: a job still
    # running after this is nak'ed, so another runner takes it now rather than after ack_wait.
    drain_seconds: float = Field(5.0, ge=0)
    test_timeout_seconds: float = Field(600.0, gt=0)

    @field_validator("stages", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            names = [s.strip() for s in v.split(",") if s.strip()]
            return names or None
        return v

    @field_validator("runner_id")
    @classmethod
    def _kv_key(cls, v: str) -> str:
        # The id is a key of the wf_runners KV bucket, which allows only these characters.
        return _KV_KEY_UNSAFE.sub("-", v).strip(".") or "runner"

    def served_stages(self) -> list[str]:
        """The stages this runner pulls jobs for: WF_STAGES, else config runner.stages ("all" = every
        stage that has an agent)."""
        pipeline = self.workflow.pipeline
        known = pipeline.agent_stages
        wanted = self.stages if self.stages is not None else self.workflow.runner.stages
        if wanted == "all" or wanted == ["all"]:
            return list(known)
        bad = [s for s in wanted if s not in known]
        if bad or not wanted:
            raise ConfigError(
                f"WF_STAGES / runner.stages: unknown stage(s) {bad or wanted}; allowed: {known} or 'all'"
            )
        return list(dict.fromkeys(wanted))
