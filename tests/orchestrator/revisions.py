"""The newest Alembic revision in the orchestrator's migrations, so tests do not hard-code a number."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from wf_orchestrator.migrations import alembic_config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise LookupError("the orchestrator has no migrations")
    return head
