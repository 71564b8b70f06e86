"""Stand-in orchestrator: `migrate` records itself and exits (or fails with FAKE_MIGRATE_FAIL)."""

import os
import sys

from fake_service import record, run_until_sigterm

if sys.argv[1:] == ["migrate"]:
    record("migrate")
    if os.environ.get("FAKE_MIGRATE_FAIL"):
        print("migration 0001 failed: relation already exists", file=sys.stderr)
        sys.exit(3)
    sys.exit(0)
record("orchestrator")
run_until_sigterm("orchestrator")
