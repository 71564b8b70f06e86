"""Errors the orchestrator raises on purpose, and what `python -m wf_orchestrator` does with them.

WorkflowError (wf_common.errors)   every error below; printed as one line, never as a traceback
├── ConfigError                    bad settings or config.yaml (names the field)          exit 2
├── BusError                       NATS cannot be reached                                 exit 1
├── OrchestratorError              base of this service's own errors                     exit 1
│   ├── DatabaseUnavailable        PostgreSQL cannot be reached or used at start
│   └── LeaseLost                  (wf_orchestrator.lease) another orchestrator holds the lease now;
│                                  the supervisor restarts this one, which becomes a standby
└── CommandError                   a command was refused: sent back as the reply, never raised out

Anything else escaping a component is a bug: it is logged (with its traceback inside the log record,
one JSON object under `logging: json_lines`) and the process exits 1 so the supervisor restarts it;
all state is durable, so nothing is lost.
"""

from __future__ import annotations

from wf_common.errors import WorkflowError


class OrchestratorError(WorkflowError):
    pass


class DatabaseUnavailable(OrchestratorError):
    pass
