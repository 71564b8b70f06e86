"""NATS helpers: connect, declare the topology, publish models, and consume with explicit acks.

The consumer loop hands each message to a handler as a `Delivery`, which decides its fate:
`ack()` once the work is durable, `nak(delay)` for transient failures, `term(reason)` for poison
messages (the reason goes to the server and the log), and `in_progress()` heartbeats for long jobs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, JetStreamManager
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError
from pydantic import BaseModel, ValidationError

from wf_common import subjects
from wf_common.config import BusConfig
from wf_common.errors import BusError
from wf_common.urls import redact_url

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_SECONDS = 15 * 60
T = TypeVar("T")


async def connect(url: str, name: str, *, first_connect_timeout: float = 15.0, **kwargs: Any) -> NATS:
    """Connect with unlimited reconnects once connected; the first connect gives up after
    `first_connect_timeout` seconds with a clear message (nats-py would otherwise retry it forever)."""

    async def on_error(err: Exception) -> None:
        log.warning("nats: %s", err)

    try:
        return await asyncio.wait_for(
            nats.connect(
                url,
                name=name,
                connect_timeout=5,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=on_error,
                **kwargs,
            ),
            first_connect_timeout,
        )
    except Exception as err:  # nats raises several unrelated types for "cannot connect"
        # A time-out's text is empty: say what it means.
        why = str(err) or (
            f"no server answered within {first_connect_timeout:g} s"
            if isinstance(err, TimeoutError)
            else type(err).__name__
        )
        raise BusError(
            f"could not connect to NATS at {redact_url(url)}: {why}. "
            "Is the stack running (`wf start`), or is nats.url in config.yaml right?"
        ) from err


async def _ensure_stream(js: JetStreamContext, cfg: StreamConfig, *, update_existing: bool = True) -> None:
    if not update_existing and await _exists(js.stream_info(cfg.name or "")):
        return
    try:
        await _declare(js.add_stream(cfg), f"stream {cfg.name}", update_existing=update_existing)
    except BadRequestError as err:
        # Exists with another config (e.g. retention changed in config.yaml): update what may change.
        if err.err_code == 10058:
            await js.update_stream(cfg)
        else:
            raise


async def _exists(info: Awaitable[object]) -> bool:
    try:
        await info
    except NotFoundError:
        return False
    return True


async def _declare(make: Awaitable[T], what: str, *, update_existing: bool) -> T:
    """Run a create call; a non-owner's refused one (the embedded server lets only the orchestrator's
    login make streams and consumers, and a refused request goes unanswered) gets a clear error."""
    try:
        return await make
    except (TimeoutError, nats.errors.TimeoutError):
        if update_existing:
            raise
        raise BusError(
            f"{what} does not exist and this service's NATS login may not make it: start the "
            "orchestrator first (`wf start` makes the streams before it starts the services)"
        ) from None


async def ensure_topology(
    js: JetStreamContext, bus: BusConfig, stages: Iterable[str], *, update_existing: bool = True
) -> None:
    """Declare streams, consumers and KV buckets. Idempotent: every service may call it at start.

    The owner (the orchestrator, and `wf start` before it starts the services) brings existing ones
    to this config; the other services pass `update_existing=False`: they only look (stream and
    consumer INFO, which their logins may do) and make what is missing, which outside the embedded
    server (no logins: tests, a shared dev server) lets any one of them start alone."""
    for name, prefix in (
        (subjects.JOBS_STREAM, subjects.JOBS_PREFIX),
        (subjects.RESULTS_STREAM, subjects.RESULTS_PREFIX),
    ):
        await _ensure_stream(
            js,
            StreamConfig(
                name=name,
                subjects=[f"{prefix}.>"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            ),
            update_existing=update_existing,
        )
    await _ensure_stream(
        js,
        StreamConfig(
            name=subjects.EVENTS_STREAM,
            subjects=[f"{subjects.EVENTS_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=bus.events_max_age_days * 86400,
            max_bytes=bus.events_max_bytes,
            discard=DiscardPolicy.OLD,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        ),
        update_existing=update_existing,
    )
    for stage in stages:
        await ensure_consumer(
            js,
            subjects.JOBS_STREAM,
            ConsumerConfig(
                durable_name=subjects.job_consumer(stage),
                filter_subject=subjects.job_subject(stage),
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=bus.ack_wait_seconds,
                max_deliver=bus.max_deliver,
                max_ack_pending=1000,
                deliver_policy=DeliverPolicy.ALL,
            ),
            update_existing=update_existing,
        )
    await ensure_consumer(
        js,
        subjects.RESULTS_STREAM,
        ConsumerConfig(
            durable_name=subjects.RESULTS_CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30,
            # The orchestrator terminates a result whose apply keeps failing (orchestrator.
            # result_apply_tries) and fails its task; a database outage is waited out, never counted.
            max_deliver=-1,
            max_ack_pending=1000,
            deliver_policy=DeliverPolicy.ALL,
        ),
        update_existing=update_existing,
    )
    await ensure_kv(js, subjects.CONTROL_BUCKET, history=10, update_existing=update_existing)
    await ensure_kv(js, subjects.RUNNERS_BUCKET, ttl=bus.runners_ttl_seconds, update_existing=update_existing)


async def ensure_orchestrator_topology(js: JetStreamContext, lease_ttl_seconds: float) -> None:
    """What only the orchestrator consumes, stored so that nothing sent while it is down is missed:
    WF_ADVISORIES (JetStream's max-deliveries advisories for jobs) with its durable consumer, the
    durable consumer of the runners' execution.started/waiting events on WF_EVENTS, and the lease."""
    await _ensure_stream(
        js,
        StreamConfig(
            name=subjects.ADVISORIES_STREAM,
            subjects=[subjects.MAX_DELIVERIES_ADVISORY],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            max_age=7 * 86400,
        ),
    )
    await ensure_consumer(
        js,
        subjects.ADVISORIES_STREAM,
        ConsumerConfig(
            durable_name=subjects.ADVISORIES_CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30,
            max_deliver=20,  # an advisory that cannot be handled 20 times is logged and dropped
            deliver_policy=DeliverPolicy.ALL,
        ),
    )
    await ensure_consumer(
        js,
        subjects.EVENTS_STREAM,
        ConsumerConfig(
            durable_name=subjects.RUNNER_EVENTS_CONSUMER,
            filter_subjects=list(subjects.RUNNER_EVENT_SUBJECTS),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30,
            max_deliver=20,
            max_ack_pending=10000,
            # Made once; from then on it resumes where it stopped. Older events were recorded already.
            deliver_policy=DeliverPolicy.NEW,
        ),
    )
    await ensure_kv(js, subjects.LEASE_BUCKET, ttl=lease_ttl_seconds)


async def ensure_consumer(
    js: JetStreamContext, stream: str, cfg: ConsumerConfig, *, update_existing: bool = True
) -> None:
    name = cfg.durable_name or cfg.name or ""
    if not update_existing and await _exists(js.consumer_info(stream, name)):
        return
    try:
        await _declare(
            js.add_consumer(stream, cfg), f"consumer {stream}/{name}", update_existing=update_existing
        )
    except BadRequestError as err:
        # 10148: exists with different settings (e.g. ack_wait changed): update in place.
        if err.err_code in (10148, 10013):
            await js.add_consumer(stream, cfg)  # add is create-or-update on 2.10+ servers
        else:
            raise


class _NamesThrowaways:
    """What both nats-py managers below share: `add_consumer` names a consumer made without a name
    `<prefix><random>`, on a copy of its config (so a re-creation gets a new name)."""

    _name_prefix: str

    async def add_consumer(
        self,
        stream: str,
        config: ConsumerConfig | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - nats-py's signature
        **params: Any,
    ) -> ConsumerInfo:
        config = (config or ConsumerConfig()).evolve(**params)
        if not config.name and not config.durable_name:
            config = config.evolve(name=f"{self._name_prefix}{secrets.token_hex(8)}")
        info: ConsumerInfo = await super().add_consumer(stream, config, timeout)  # type: ignore[misc]
        return info


class _NamingManager(_NamesThrowaways, JetStreamManager):
    def __init__(self, name_prefix: str, **opts: Any) -> None:
        super().__init__(**opts)
        self._name_prefix = name_prefix


class NamedThrowawaysJetStream(_NamesThrowaways, JetStreamContext):
    """A JetStream context that gives every consumer it makes without a name (a reader's ordered
    and pull consumers, and an ordered consumer's re-creation after a gap) a fresh name of its own,
    `<prefix><random>`.

    Unnamed, nats-py makes a consumer through `$JS.API.CONSUMER.CREATE.<stream>`, which takes the name
    from the request body: a login allowed that subject could replace another service's durable. Named,
    the request goes to `$JS.API.CONSUMER.CREATE.<stream>.<name>[.<filter>]`, where the server names
    the consumer after the subject, and the logins deny the durables' subjects (wf_cli.credentials).
    nats-py's subscriptions make their consumers through the `_jsm` manager, so it is named too."""

    def __init__(self, nc: NATS, name_prefix: str, **opts: Any) -> None:
        super().__init__(nc, **opts)
        self._name_prefix = name_prefix

    @property
    def _jsm(self) -> JetStreamManager:
        return _NamingManager(self._name_prefix, conn=self._nc, prefix=self._prefix, timeout=self._timeout)


async def ensure_kv(
    js: JetStreamContext,
    bucket: str,
    *,
    history: int = 1,
    ttl: float | None = None,
    update_existing: bool = True,
) -> None:
    try:
        await js.key_value(bucket)
    except (NotFoundError, BucketNotFound):
        await _declare(
            js.create_key_value(KeyValueConfig(bucket=bucket, history=history, ttl=ttl)),
            f"KV bucket {bucket}",
            update_existing=update_existing,
        )


try:  # older nats-py raises BucketNotFoundError under another name
    from nats.js.errors import BucketNotFoundError as BucketNotFound
except ImportError:  # pragma: no cover
    BucketNotFound = NotFoundError  # type: ignore[misc,assignment]


async def publish(
    js: JetStreamContext, subject: str, payload: BaseModel, *, msg_id: str | None = None
) -> int:
    """Publish a model as JSON and wait for the stream's ack; returns the stream sequence."""
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    ack = await js.publish(subject, payload.model_dump_json().encode(), headers=headers)
    return int(ack.seq)


class Delivery:
    """One JetStream message and the decisions a handler can make about it."""

    def __init__(self, msg: Msg, nc: NATS) -> None:
        self.msg = msg
        self._nc = nc
        self.settled = False

    @property
    def data(self) -> bytes:
        return self.msg.data

    @property
    def num_delivered(self) -> int:
        return int(self.msg.metadata.num_delivered or 1)

    @property
    def stream_seq(self) -> int:
        return int(self.msg.metadata.sequence.stream)

    async def ack(self, *, wait: bool = True) -> None:
        """Acknowledge. `wait=False` skips the server's confirmation (one round trip less) where a
        lost ack is harmless because the handler is idempotent and a redelivery changes nothing."""
        if not self.settled:
            await (self.msg.ack_sync() if wait else self.msg.ack())
            self.settled = True

    async def nak(self, delay: float | None = None) -> None:
        if not self.settled:
            await self.msg.nak(delay=delay)
            self.settled = True

    async def term(self, reason: str) -> None:
        """Stop redelivery for good; servers ≥2.10.4 record the reason in their advisory."""
        if not self.settled:
            log.error("terminating message %s seq=%s: %s", self.msg.subject, self.stream_seq, reason)
            await self._nc.publish(self.msg.reply, b"+TERM " + reason.encode()[:1000])
            self.settled = True

    async def in_progress(self) -> None:
        if not self.settled:
            await self.msg.in_progress()

    @contextlib.asynccontextmanager
    async def heartbeat(self, every: float) -> AsyncIterator[None]:
        """Keep telling the server we are still working, so a long job is not redelivered."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(every)
                with contextlib.suppress(Exception):
                    await self.in_progress()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


Handler = Callable[[Delivery], Awaitable[None]]

_WAKE = object()  # a handler finished, stop was set, or a tick: look at the requests again


class _PullRequests:
    """The pull requests we have outstanding on one consumer, oldest first.

    The server serves waiting requests in order and ends each with a 408 (expired) or 409 (e.g. the
    consumer changed); a request whose end we never hear of (lost in a reconnect) is dropped once it
    is past its expiry by `grace`, so the count of messages the server may still send never sticks.
    """

    def __init__(self, expires: float, grace: float = 2.0) -> None:
        self.expires = expires
        self._grace = grace
        self._open: collections.deque[list[float]] = collections.deque()  # [deadline, undelivered]

    @property
    def pending(self) -> int:
        return int(sum(r[1] for r in self._open))

    def __bool__(self) -> bool:
        return bool(self._open)

    def issued(self, batch: int, now: float) -> None:
        self._open.append([now + self.expires, batch])

    def delivered(self) -> None:
        """One message arrived: it belongs to the oldest request."""
        if self._open:
            self._open[0][1] -= 1
            if self._open[0][1] <= 0:
                self._open.popleft()

    def ended(self) -> None:
        """The server ended a request (408/409) before it filled: the oldest one."""
        if self._open:
            self._open.popleft()

    def forget_all(self) -> None:
        self._open.clear()

    def drop_lost(self, now: float) -> None:
        while self._open and self._open[0][0] + self._grace < now:
            self._open.popleft()


async def consume(
    nc: NATS,
    js: JetStreamContext,
    *,
    stream: str,
    durable: str,
    handler: Handler,
    stop: asyncio.Event,
    batch: int = 1,
    concurrency: int = 1,
    fetch_timeout: float = 1.0,
) -> None:
    """Pull from a durable consumer until `stop` is set, running up to `concurrency` handlers at once.

    Pull requests stay outstanding for every free slot (asking for up to `batch` messages each, each
    expiring after `fetch_timeout`, which is also about how long a stop waits), and each message goes
    to a handler the moment it arrives: nothing waits for a batch to fill, as a `fetch(n)` does until
    its deadline. A handler that raises gets its message nak'ed with a short delay; an unsettled
    message after a handler returns is acked (the handler finished its work).
    """
    arrivals: asyncio.Queue[Any] = asyncio.Queue()
    next_subject = f"{js._prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"  # the API prefix (domain)
    inbox = nc.new_inbox()

    async def arrived(msg: Msg) -> None:
        arrivals.put_nowait(msg)

    sub = await nc.subscribe(inbox, cb=arrived)
    requests = _PullRequests(expires=fetch_timeout)
    running: set[asyncio.Task[None]] = set()  # handlers and naks, for the wait at the end
    busy = 0  # handlers not yet finished (a task leaves `running` only after the loop has woken)
    backlog: collections.deque[Msg] = collections.deque()
    # Ask again once this many slots are free (or nothing is outstanding): fewer, larger requests.
    refill_at = max(1, min(batch, concurrency) // 2)
    not_before = 0.0  # after a failed request, when to ask again
    loop = asyncio.get_running_loop()

    async def run(d: Delivery) -> None:
        nonlocal busy
        try:
            await handler(d)
            await d.ack()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handler failed for %s (delivery %s); will retry", d.msg.subject, d.num_delivered)
            with contextlib.suppress(Exception):
                await d.nak(delay=min(30.0, 0.5 * d.num_delivered))
        finally:
            busy -= 1
            arrivals.put_nowait(_WAKE)

    def track(work: Awaitable[Any]) -> None:
        t = asyncio.ensure_future(work)
        running.add(t)
        t.add_done_callback(running.discard)

    def start(msg: Msg) -> None:
        nonlocal busy
        busy += 1
        track(run(Delivery(msg, nc)))

    async def ticks() -> None:
        """Wake the loop on stop, and now and then to drop requests whose end never came."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(fetch_timeout, 0.5))
            arrivals.put_nowait(_WAKE)

    ticker = asyncio.create_task(ticks())

    async def ask() -> None:
        nonlocal not_before
        now = loop.time()
        requests.drop_lost(now)
        while backlog and busy < concurrency:
            start(backlog.popleft())
        free = concurrency - busy - len(backlog) - requests.pending
        if stop.is_set() or free <= 0 or now < not_before or (requests and free < refill_at):
            return
        n = min(free, batch)
        body = json.dumps({"batch": n, "expires": int(fetch_timeout * 1e9)}).encode()
        try:
            await nc.publish(next_subject, body, reply=inbox)
        except Exception as err:  # noqa: BLE001 - the loop must outlive a failed request (a reconnect)
            log.warning("pull request to %s/%s failed: %s", stream, durable, err)
            not_before = now + 0.5
            return
        requests.issued(n, now)

    def settle(msg: Msg) -> None:
        nonlocal not_before
        status = JetStreamContext.is_status_msg(msg)
        if not status:
            requests.delivered()
            if stop.is_set():
                track(msg.nak())
            elif busy < concurrency:
                start(msg)
            else:
                backlog.append(msg)  # more than we asked for (a request we had given up on)
            return
        if status == "100":  # an idle heartbeat
            return
        if status in ("408", "409"):  # the request expired, or the server ended it
            requests.ended()
            if status == "409":
                why = msg.headers.get("Description") if msg.headers else None
                log.info("pull request on %s/%s ended: %s", stream, durable, why)
            return
        # 503 (no such consumer: nobody took the request) or anything else: back off and ask again.
        log.warning(
            "pull request on %s/%s refused (%s %s); asking again shortly",
            stream,
            durable,
            status,
            msg.headers.get("Description", "") if msg.headers else "",
        )
        requests.forget_all()
        not_before = loop.time() + 0.5

    try:
        await ask()
        while not stop.is_set():
            item = await arrivals.get()
            if item is not _WAKE:
                settle(item)
            await ask()
        # Stopping: outstanding requests end within their expiry; whatever they still bring goes back.
        deadline = loop.time() + fetch_timeout + 0.5
        while requests and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                item = await asyncio.wait_for(arrivals.get(), timeout=max(0.0, deadline - loop.time()))
                if item is not _WAKE:
                    settle(item)
        while not arrivals.empty():
            item = arrivals.get_nowait()
            if item is not _WAKE and not JetStreamContext.is_status_msg(item):
                track(item.nak())
        while backlog:
            track(backlog.popleft().nak())
    finally:
        ticker.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def request(nc: NATS, subject: str, payload: BaseModel, timeout: float = 10.0) -> bytes:  # noqa: ASYNC109
    try:
        reply = await nc.request(subject, payload.model_dump_json().encode(), timeout=timeout)
    except nats.errors.NoRespondersError:
        raise BusError(f"nobody answers on {subject}: is the orchestrator running?") from None
    except (TimeoutError, nats.errors.TimeoutError):
        raise BusError(
            f"no answer on {subject} within {timeout:.0f}s: is the orchestrator overloaded?"
        ) from None
    return bytes(reply.data)


__all__ = [
    "Delivery",
    "ValidationError",
    "connect",
    "consume",
    "ensure_topology",
    "publish",
    "request",
]
