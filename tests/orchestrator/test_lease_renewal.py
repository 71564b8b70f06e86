"""Renewing the orchestrator lease against a real NATS KV bucket: a slow start or a renewal that timed
out on our side must not stop the only orchestrator; another holder must."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext
from wf_cli.embedded import NatsServer
from wf_common import bus, subjects
from wf_orchestrator.lease import Lease, LeaseLost

from tests.orchestrator.hub import eventually

TTL = 1.0


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await bus.ensure_kv(js, subjects.LEASE_BUCKET, ttl=TTL)
        yield js
    finally:
        await nc.close()


async def _expired(lease: Lease) -> bool:
    return await lease.current_holder() is None


async def test_a_lease_that_expired_while_nobody_took_it_is_held_again(js: JetStreamContext) -> None:
    lease = Lease(js, TTL)
    assert await lease.try_acquire()
    # Starting up (migrations, loading state) took longer than the TTL: the key expired meanwhile.
    await eventually(lambda: _expired(lease), within=30, what="the lease key to expire", every=0.1)
    await lease.renew()
    assert await lease.current_holder() == lease.holder


async def test_a_renewal_that_reached_the_server_after_timing_out_here_is_adopted(
    js: JetStreamContext,
) -> None:
    lease = Lease(js, 60)
    assert await lease.try_acquire()
    kv = await js.key_value(subjects.LEASE_BUCKET)
    stale = lease.revision
    # What a renewal cancelled by our own timeout leaves behind: the server applied it, we never saw it.
    await kv.update(subjects.LEASE_KEY, lease._value(), last=stale)
    await lease.renew()
    assert lease.revision is not None
    assert stale is not None
    assert lease.revision > stale
    assert await lease.current_holder() == lease.holder


async def test_a_lease_another_orchestrator_took_is_lost(js: JetStreamContext) -> None:
    first, second = Lease(js, TTL), Lease(js, TTL)
    assert await first.try_acquire()
    assert not await second.try_acquire()
    await eventually(lambda: _expired(first), within=30, what="the lease key to expire", every=0.1)
    assert await second.try_acquire()
    with pytest.raises(LeaseLost, match="another orchestrator took the lease"):
        await first.renew()
    assert await second.current_holder() == second.holder
