"""`python -m wf_agent_runner` / `wf-agent-runner`: run an agent runner until SIGTERM or SIGINT.

On a signal the runner stops taking jobs, lets in-flight ones finish for WF_DRAIN_SECONDS, hands
back (naks) any still running, removes its heartbeat and closes the NATS connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from contextlib import AsyncExitStack

from nats.aio.client import Client as NATS
from wf_common import bus
from wf_common.errors import WorkflowError
from wf_common.settings import load_settings, setup_logging

from wf_agent_runner.runner import Runner
from wf_agent_runner.settings import RunnerSettings

log = logging.getLogger("wf_agent_runner")


async def _close(nc: NATS) -> None:
    # drain() flushes what we published (results, events) before closing.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.drain(), 10)
    if not nc.is_closed:
        with contextlib.suppress(Exception):
            await nc.close()


async def main() -> None:
    settings = load_settings(RunnerSettings)
    setup_logging(settings.log_level, json_lines=settings.log_json, name="agent-runner")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per model call is noise
    settings.served_stages()  # a bad WF_STAGES fails here, before connecting
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        nc = await bus.connect(settings.resolved_nats_url(), name=f"agent-runner:{settings.runner_id}")
        stack.push_async_callback(_close, nc)
        await Runner(settings, nc).run(stop)


def run() -> None:
    try:
        asyncio.run(main())
    except WorkflowError as err:
        print(f"agent-runner: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # a second Ctrl-C before the handlers were installed
        sys.exit(130)


if __name__ == "__main__":
    run()
