"""Process settings: where the config file, NATS and PostgreSQL are. One object per service.

Settings come from the environment (WF_*), which is how `wf start` and docker compose hand them to each
service; the configuration file (`WF_CONFIG`) holds everything about the workflow itself. A URL in the
environment wins over the one in the file. Every field is validated at start and a bad one is named.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from functools import cached_property
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from wf_common.config import WorkflowConfig, load_config
from wf_common.errors import ConfigError


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WF_", extra="ignore")

    config: str | None = Field(None, description="path of config.yaml; unset = built-in defaults")
    nats_url: str | None = None
    database_url: str | None = None
    log_level: str = "INFO"
    log_json: bool = False

    @cached_property
    def workflow(self) -> WorkflowConfig:
        return load_config(self.config)

    def resolved_nats_url(self) -> str:
        url = self.nats_url or self.workflow.nats.url
        if not url:
            raise ConfigError("no NATS server: set WF_NATS_URL or nats.url in config.yaml (wf start sets it)")
        return url

    def resolved_database_url(self) -> str:
        url = self.database_url or self.workflow.database.url
        if not url:
            raise ConfigError(
                "no database: set WF_DATABASE_URL or database.url in config.yaml (wf start sets it)"
            )
        return async_database_url(url)


def async_database_url(url: str) -> str:
    """Accept plain postgresql:// URLs and point SQLAlchemy at asyncpg."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if not url.startswith("postgresql+asyncpg://"):
        raise ConfigError(f"database url {url!r} must start with postgresql:// (PostgreSQL is required)")
    return url


S = TypeVar("S", bound=ServiceSettings)


def load_settings(cls: type[S]) -> S:
    try:
        settings = cls()
        settings.workflow  # noqa: B018 - validate the config file now, not on first use
    except ValidationError as err:
        fields = "; ".join(f"WF_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"bad settings: {fields}") from None
    return settings


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: t (ISO 8601, UTC), lvl, svc, log (logger), msg, and exc (the
    traceback as text) when there is one. Newlines inside values are escaped, so a line is a record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "t": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "lvl": record.levelname,
            "svc": self.service,
            "log": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO", *, json_lines: bool = False, name: str = "wf") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonLinesFormatter(name)
        if json_lines
        else logging.Formatter(f"%(asctime)s %(levelname)-5s {name} %(name)s: %(message)s")
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("nats").setLevel(logging.WARNING)
