"""Stand-in agent-runner."""

import os

from fake_service import record, run_until_sigterm

name = os.environ.get("WF_RUNNER_ID", "runner")
record(name)
run_until_sigterm(name)
