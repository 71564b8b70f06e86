"""Sandboxes for agent commands: one interface (`Sandbox`), backends docker, bubblewrap and none."""

from wf_agent_runner.sandbox.base import RunOutcome, Sandbox, SandboxError
from wf_agent_runner.sandbox.factory import cleanup_leftovers, open_sandbox, resolve_backend

__all__ = ["RunOutcome", "Sandbox", "SandboxError", "cleanup_leftovers", "open_sandbox", "resolve_backend"]
