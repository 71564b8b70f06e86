"""`python -m wf_sync_bridge` runs the sync bridge; `python -m wf_sync_bridge migrate` migrates its
schema and exits. Bad configuration (including a stage missing in a tracker) exits with code 2."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from wf_common.errors import ConfigError, WorkflowError
from wf_common.settings import load_settings, setup_logging

from wf_sync_bridge.settings import SyncBridgeSettings

log = logging.getLogger("wf_sync_bridge")
USAGE = "usage: python -m wf_sync_bridge [migrate]"


async def main(settings: SyncBridgeSettings) -> int:
    from wf_sync_bridge.app import SyncBridge

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bridge = SyncBridge(settings)
    try:
        await bridge.start()
        waiting = asyncio.create_task(bridge.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if waiting.done() and waiting.exception() is not None:
            log.error("a sync bridge component failed: %s", waiting.exception())
            return 1
        waiting.cancel()
        return 0
    finally:
        await bridge.stop()


def run() -> None:
    args = sys.argv[1:]
    if args not in ([], ["migrate"]):
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    try:
        settings = load_settings(SyncBridgeSettings)
        setup_logging(settings.log_level, json_lines=settings.log_json, name="sync-bridge")
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        if args == ["migrate"]:
            from wf_sync_bridge.migrations import migrate

            asyncio.run(migrate(settings.resolved_database_url()))
            log.info("sync schema migrated")
            return
        sys.exit(asyncio.run(main(settings)))
    except ConfigError as err:
        print(f"wf-sync-bridge: {err}", file=sys.stderr)
        sys.exit(2)
    except WorkflowError as err:
        print(f"wf-sync-bridge: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run()
