"""Settings of the sync bridge process (environment WF_*, see wf_common.settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from wf_common.settings import ServiceSettings


class SyncBridgeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WF_", extra="ignore")

    migrate_on_start: bool = True
    # Where tracker webhooks are received (POST /hooks/<target>); port 0 = no webhook listener.
    sync_webhook_host: str = "127.0.0.1"
    sync_webhook_port: int = Field(0, ge=0, le=65535)
