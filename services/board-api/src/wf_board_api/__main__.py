"""`wf-board-api` / `python -m wf_board_api`: serve the board API with uvicorn."""

from __future__ import annotations

import sys
import threading
from types import FrameType

import uvicorn
from wf_common.errors import WorkflowError
from wf_common.settings import load_settings, setup_logging

from wf_board_api.app import create_app
from wf_board_api.settings import BoardSettings

# Open event streams would otherwise hold a graceful shutdown up for as long as clients stay.
GRACEFUL_SHUTDOWN_SECONDS = 5


class _Server(uvicorn.Server):
    """Tells open event streams to end as soon as a stop is asked for, then stops as usual."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self._stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._stopping.set()
        super().handle_exit(sig, frame)


def run() -> None:
    try:
        settings = load_settings(BoardSettings)
        setup_logging(settings.log_level, json_lines=settings.log_json, name="board-api")
        app = create_app(settings)
    except WorkflowError as err:
        print(f"wf-board-api: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    config = uvicorn.Config(
        app,
        host=settings.host(),
        port=settings.port(),
        log_config=None,  # keep the format setup_logging chose
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        proxy_headers=False,
    )
    _Server(config, app.state.stopping).run()


if __name__ == "__main__":
    run()
