"""`wf start` declares the JetStream topology (streams, consumers, KV buckets) with the orchestrator's
NATS login before it starts the services: on the embedded server only that login may make or change
them (wf_cli.credentials.NATS_ALLOW_PUBLISH), and the services start side by side, so a runner or the
board must find them made rather than race the orchestrator for them."""

from __future__ import annotations

import contextlib
import logging

from nats.errors import Error as NatsError
from nats.js.errors import Error as JetStreamError
from wf_common import bus
from wf_common.config import WorkflowConfig
from wf_common.errors import BusError

from wf_cli.errors import CliError

log = logging.getLogger(__name__)


async def declare_topology(nats_url: str, config: WorkflowConfig) -> None:
    nc = await bus.connect(nats_url, name="wf-start", first_connect_timeout=10.0)
    try:
        js = nc.jetstream()
        await bus.ensure_topology(js, config.bus, config.pipeline.agent_stages)
        await bus.ensure_orchestrator_topology(js, config.orchestrator.lease_ttl_seconds)
    except (NatsError, JetStreamError, BusError, TimeoutError) as exc:
        raise CliError(f"cannot declare the NATS streams and consumers: {exc}") from None
    finally:
        with contextlib.suppress(NatsError, TimeoutError):
            await nc.close()
    log.info("NATS streams, consumers and buckets declared")
