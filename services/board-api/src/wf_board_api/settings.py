"""Settings of the board API: the common service settings plus where to listen and who may call."""

from __future__ import annotations

from pydantic import Field, SecretStr
from wf_common.config import ENTRY_STAGE, FINAL_STAGE
from wf_common.errors import ConfigError
from wf_common.settings import ServiceSettings


class BoardSettings(ServiceSettings):
    """Environment: WF_BOARD_HOST / WF_BOARD_PORT / WF_API_TOKEN override `board:` in config.yaml."""

    board_host: str | None = None
    board_port: int | None = Field(None, ge=1, le=65535)
    # Browser origins allowed to call the API (WF_BOARD_CORS_ORIGINS='["http://localhost:5173"]').
    # Empty = CORS off: the UI is served from the same origin, and a local API that any web page
    # could drive would let a malicious site approve deployments.
    board_cors_origins: list[str] = Field(default_factory=list)
    # The token every /api request must carry (wf start sets it; else board.token in config.yaml).
    api_token: SecretStr | None = None
    # How long a command may wait for the orchestrator's reply before the client gets a 503.
    board_command_timeout: float = Field(10.0, gt=0, le=300)
    # Seconds between SSE keep-alive comments; proxies drop connections that stay silent too long.
    board_keepalive_seconds: float = Field(15.0, gt=0, le=300)

    def host(self) -> str:
        return self.board_host or self.workflow.board.host

    def port(self) -> int:
        return self.board_port or self.workflow.board.port

    def resolved_api_token(self) -> str:
        token = self.api_token or self.workflow.board.token
        if token is None or not token.get_secret_value():
            raise ConfigError(
                "no API token: set WF_API_TOKEN or board.token in config.yaml (wf start sets it); "
                "the board API does not run unprotected"
            )
        return token.get_secret_value()

    def allowed_hosts(self) -> list[str]:
        return self.workflow.board.allowed_hosts

    def stages(self) -> list[str]:
        """The board's columns in order: backlog, the configured stages, done."""
        return [ENTRY_STAGE, *(s.name for s in self.workflow.pipeline.stages), FINAL_STAGE]
