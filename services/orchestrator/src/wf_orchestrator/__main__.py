"""`python -m wf_orchestrator` runs the orchestrator; `python -m wf_orchestrator migrate` migrates the
database (WF_DATABASE_URL or database.url) and exits. Bad configuration exits with code 2; any other
error exits 1 with one line (wf_orchestrator.errors has the tree). Nothing leaves as a traceback."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from contextlib import AsyncExitStack

from sqlalchemy.exc import DBAPIError
from wf_common.errors import ConfigError, WorkflowError
from wf_common.settings import load_settings, setup_logging

from wf_orchestrator.errors import DatabaseUnavailable
from wf_orchestrator.settings import OrchestratorSettings

log = logging.getLogger("wf_orchestrator")

USAGE = "usage: python -m wf_orchestrator [migrate]"


async def main(settings: OrchestratorSettings) -> int:
    from wf_orchestrator.app import Orchestrator  # heavy imports after the settings were checked

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    ready = False

    def on_signal() -> None:
        stop.set()
        if not ready and me is not None:
            me.cancel()  # still connecting (NATS or PostgreSQL not up yet): give up at once

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    code = 0
    async with AsyncExitStack() as stack:
        orchestrator = await stack.enter_async_context(Orchestrator(settings))
        ready = True
        waiting = asyncio.create_task(orchestrator.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if waiting.done():
            try:
                waiting.result()
            except WorkflowError as err:
                log.error("%s", err)  # noqa: TRY400 - one line, no traceback; e.g. the lease was lost: restarted, this one becomes a standby
                code = 1
            except Exception:  # a bug in a component: log it, exit so we are restarted
                # Exit non-zero so the supervisor (wf start, docker) restarts us; state is all durable.
                log.exception("an orchestrator component failed; stopping")
                code = 1
        else:
            waiting.cancel()
            log.info("stopping: finishing what is in flight")
    return code


def run() -> None:
    args = sys.argv[1:]
    if args not in ([], ["migrate"]):
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    try:
        settings = load_settings(OrchestratorSettings)
        setup_logging(settings.log_level, json_lines=settings.log_json, name="orchestrator")
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
        if args == ["migrate"]:
            url = settings.resolved_database_url()
            from wf_orchestrator.migrations import migrate

            try:
                asyncio.run(migrate(url))
            except (OSError, DBAPIError) as err:
                raise DatabaseUnavailable(
                    f"could not migrate the database: {str(err).splitlines()[0]}. "
                    "Is PostgreSQL running, and is WF_DATABASE_URL right?"
                ) from err
            log.info("database migrated")
            return
        try:
            sys.exit(asyncio.run(main(settings)))
        except asyncio.CancelledError:
            print("wf-orchestrator: stopped before it was ready", file=sys.stderr)
            sys.exit(0)
    except ConfigError as err:
        print(f"wf-orchestrator: {err}", file=sys.stderr)
        sys.exit(2)
    except WorkflowError as err:
        print(f"wf-orchestrator: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # the process boundary: one line out, the traceback in the log
        log.exception("internal error")
        print(f"wf-orchestrator: internal error: {type(err).__name__}: {err} (see the log)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run()
