"""Credentials in server URLs never reach a message: redact_url, and bus.connect's error."""

from __future__ import annotations

import pytest
from wf_cli.embedded import free_port
from wf_common import bus
from wf_common.errors import BusError
from wf_common.urls import redact_url


def test_passwords_are_hidden_and_the_rest_kept() -> None:
    assert redact_url("nats://runner:s3cr3t@127.0.0.1:4222") == "nats://runner:***@127.0.0.1:4222"
    assert (
        redact_url("postgresql+asyncpg://wf_board:p%40ss@h:5/workflow")
        == "postgresql+asyncpg://wf_board:***@h:5/workflow"
    )
    assert redact_url("nats://a:x@n1:4222,nats://b:y@n2:4222") == "nats://a:***@n1:4222,nats://b:***@n2:4222"
    assert redact_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
    assert redact_url("nats://a-nats-token@127.0.0.1:4222") == "nats://***@127.0.0.1:4222"
    assert redact_url("postgresql://wf@db/workflow") == "postgresql://wf@db/workflow"


async def test_a_failed_nats_connect_does_not_show_the_password() -> None:
    url = f"nats://orchestrator:very-secret-password@127.0.0.1:{free_port()}"
    with pytest.raises(BusError) as failed:
        await bus.connect(url, "t", first_connect_timeout=2)
    assert "very-secret-password" not in str(failed.value)
    assert "nats://orchestrator:***@127.0.0.1" in str(failed.value)
