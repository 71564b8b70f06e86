"""Turn a runner's `Result` into the facts the machine decides on and the rows the caller records."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from wf_common.events import ExecutionFinished
from wf_common.jobs import Result

from wf_orchestrator.pipeline.model import ResultFacts


def handoff_payload(result: Result) -> dict[str, Any]:
    """What a stage passes on: its summary, commits and changed files, the test run without its output
    (that is in the bug/attachment when it matters) and any findings."""
    payload: dict[str, Any] = {
        "from_stage": result.stage,
        "summary": result.summary,
        "commits": list(result.commits),
        "files_changed": list(result.files_changed),
    }
    if result.test_run is not None:
        payload["test_run"] = result.test_run.model_dump(mode="json", exclude={"output_tail"})
    if result.findings:
        payload["findings"] = [f.model_dump(mode="json") for f in result.findings]
    if result.skipped:
        payload["skipped"] = result.skipped
    return payload


def reproduction(result: Result) -> dict[str, Any]:
    """How to see a failure again: the failing tests, the end of the output, the command and exit code."""
    repro: dict[str, Any] = {}
    if result.test_run is not None:
        repro.update(
            failed_tests=list(result.test_run.failed_tests),
            output_tail=result.test_run.output_tail,
            command=result.test_run.command,
            exit_code=result.test_run.exit_code,
        )
        if result.test_run.failures:
            repro["failures"] = [f.model_dump(mode="json") for f in result.test_run.failures]
    if result.findings:
        repro["findings"] = [f.model_dump(mode="json") for f in result.findings]
    return repro


def result_details(result: Result) -> dict[str, Any]:
    """Everything of a result worth keeping on its execution row (`result_details`)."""
    return {
        "test_run": result.test_run.model_dump(mode="json") if result.test_run else None,
        "findings": [f.model_dump(mode="json") for f in result.findings],
        "commits": list(result.commits),
        "files_changed": list(result.files_changed),
        "breakdown": result.breakdown.model_dump(mode="json") if result.breakdown else None,
        "error": result.error.model_dump(mode="json") if result.error else None,
        "escalate": result.escalate,
        "skipped": result.skipped,
        "files": [f.filename for f in result.files],
    }


def execution_record(result: Result) -> dict[str, Any]:
    """The columns of the execution that record this result (status aside: the decision sets it)."""
    return {
        "result_status": result.status.value,
        "result_summary": result.summary,
        "result_details": result_details(result),
        "usage": result.usage.model_dump(mode="json"),
        "started_at": result.started_at,
        "completed_at": result.finished_at,
        "runner_id": result.runner_id[:100] or None,
    }


def finished_event(
    result: Result, *, project: str, task_key: str, actor: str, stage: str
) -> ExecutionFinished:
    """`execution.finished` for the execution this result ends (as the runner reported it)."""
    return ExecutionFinished(
        project=project,
        task_key=task_key,
        actor=actor,
        execution_id=result.job_id,
        stage=stage,
        status=result.status.value,
        summary=result.summary,
        usage=result.usage,
    )


def facts(result: Result) -> ResultFacts:
    output = result.test_run.output_tail if result.test_run and result.test_run.output_tail else None
    return ResultFacts(
        stage=result.stage,
        status=result.status.value,
        summary=result.summary,
        escalate=result.escalate,
        error_message=result.error.message if result.error else None,
        handoff=handoff_payload(result),
        reproduction=reproduction(result),
        full_output=output,
        files=_files(result),
    )


def _files(result: Result) -> tuple[tuple[str, str, bytes], ...]:
    """The result's attachments decoded; one that is not valid base64 is left out (never fatal)."""
    out: list[tuple[str, str, bytes]] = []
    for f in result.files:
        try:
            out.append((f.filename, f.content_type, base64.b64decode(f.content_b64, validate=True)))
        except (binascii.Error, ValueError):
            continue
    return tuple(out)
