"""The pure part of the orchestrator: the state machine, dispatch selection and dependency checks.

Nothing here does I/O; `wf_orchestrator.tasks` gathers facts from the database and applies decisions.
"""

from wf_orchestrator.pipeline import machine, results, selection
from wf_orchestrator.pipeline.graph import find_cycle
from wf_orchestrator.pipeline.model import (
    Candidate,
    Decision,
    Handoff,
    Load,
    NewBug,
    Place,
    ResultFacts,
    TaskFacts,
)

__all__ = [
    "Candidate",
    "Decision",
    "Handoff",
    "Load",
    "NewBug",
    "Place",
    "ResultFacts",
    "TaskFacts",
    "find_cycle",
    "machine",
    "results",
    "selection",
]
