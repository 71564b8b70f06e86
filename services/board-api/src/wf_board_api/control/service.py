"""Reading the KV buckets the orchestrator (wf_control) and the runners (wf_runners) write.

A bucket that does not exist yet means nobody has written it: not paused, no runners. Reads go to
the stream directly (stream info + get) rather than through a KV watcher, which would leave a
consumer on the server for minutes after every request.
"""

from __future__ import annotations

import json
import logging

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError
from wf_common.jobs import RunnerHeartbeat
from wf_common.pauses import PauseState
from wf_common.subjects import CONTROL_BUCKET, PAUSED_KEY, RUNNERS_BUCKET

from wf_board_api.branches.service import pause_state
from wf_board_api.errors import Unavailable

log = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "on"}


def parse_paused(value: bytes | None) -> bool:
    """The orchestrator writes `true`/`false`; JSON `{"paused": true}` and 1/0 are read too."""
    if not value:
        return False
    text = value.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text.lower() in _TRUE
    if isinstance(data, dict):
        data = data.get("paused", False)
    if isinstance(data, str):
        return data.strip().lower() in _TRUE
    return bool(data) if isinstance(data, bool | int) else False


async def is_paused(js: JetStreamContext) -> bool:
    try:
        kv = await js.key_value(CONTROL_BUCKET)
        entry = await kv.get(PAUSED_KEY)
    except NotFoundError:  # the bucket, the key, or a deleted key
        return False
    except nats.errors.Error as err:
        raise Unavailable(f"NATS is not answering ({err or type(err).__name__})") from err
    return parse_paused(entry.value)


async def read_pauses(js: JetStreamContext) -> PauseState:
    """Every pause in effect: the global flag, paused projects and paused tasks."""
    state = await pause_state(js)
    state.paused = await is_paused(js)
    return state


async def live_runners(js: JetStreamContext) -> list[RunnerHeartbeat]:
    """Runners whose heartbeat is in wf_runners; the bucket's TTL drops a runner that stopped beating."""
    stream = f"KV_{RUNNERS_BUCKET}"
    prefix = f"$KV.{RUNNERS_BUCKET}."
    try:
        info = await js.stream_info(stream, subjects_filter=f"{prefix}>")
        kv = await js.key_value(RUNNERS_BUCKET)
        runners = []
        for subject in sorted(info.state.subjects or {}):
            try:
                entry = await kv.get(subject[len(prefix) :])
            except NotFoundError:  # deleted by a runner that stopped cleanly, or expired meanwhile
                continue
            try:
                runners.append(RunnerHeartbeat.model_validate_json(entry.value or b""))
            except ValidationError as err:
                log.warning("ignoring unreadable heartbeat %s: %s", subject, err)
    except NotFoundError:
        return []
    except nats.errors.Error as err:
        raise Unavailable(f"NATS is not answering ({err or type(err).__name__})") from err
    return sorted(runners, key=lambda r: r.runner_id)
