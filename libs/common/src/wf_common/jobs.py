"""Messages between the orchestrator and the agent runners: jobs (wf.jobs.<stage>) and results
(wf.results.<stage>). Both carry `schema_version` so fields can be added without breaking readers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wf_common.states import Verdict

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    # Unknown fields from newer senders are ignored, so readers can be upgraded after writers.
    model_config = ConfigDict(extra="ignore")
    schema_version: int = SCHEMA_VERSION


class ProjectRef(BaseModel):
    slug: str
    name: str
    workspace: str
    test_command: str
    # The end-to-end command TESTING runs after deploy (e.g. a Playwright test); None: the stage is
    # skipped, visibly. The runner fills it from `agents.projects.<slug>.e2e_command` when unset.
    e2e_command: str | None = None


class TaskRef(BaseModel):
    key: str
    title: str
    description: str = ""
    acceptance_criteria: list[str] = Field(default_factory=list)
    priority: int = 5
    parent_key: str | None = None


class BugRef(BaseModel):
    key: str
    title: str
    description: str = ""
    source_stage: str
    reproduction: dict[str, Any] = Field(default_factory=dict)


class FeedbackRef(BaseModel):
    text: str
    actor: str
    at: datetime
    # Set when the feedback is a comment on a line of the task's diff.
    file: str | None = None
    line: int | None = None


class Job(Message):
    job_id: int  # the execution id
    idempotency_key: str  # <project>/<task>/<stage>/<attempt>, also the Nats-Msg-Id
    stage: str
    role: str
    attempt: int
    project: ProjectRef
    task: TaskRef
    idea: str | None = None  # for the PM: the idea to break down
    feedback: list[FeedbackRef] = Field(default_factory=list)
    bugs: list[BugRef] = Field(default_factory=list)
    handoff: dict[str, Any] = Field(default_factory=dict)  # what the previous stage passed on
    max_turns: int = 30
    timeout_seconds: int = 900
    schema_retries: int = 2
    issued_at: datetime = Field(default_factory=utcnow)
    # The task's own git worktree (branch wf/<KEY>) the agent works in; None: the workspace itself
    # (the PM, and jobs from before worktrees). Runners use `worktree or project.workspace`.
    worktree: str | None = None


def idempotency_key(project: str, task_key: str, stage: str, attempt: int) -> str:
    return f"{project}/{task_key}/{stage}/{attempt}"


class PlannedTask(BaseModel):
    """One task of the PM's breakdown: the structured-output schema the model must follow."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=3, max_length=200)
    description: str = Field(min_length=1, max_length=20_000)
    acceptance_criteria: list[str] = Field(min_length=1, max_length=30)
    priority: int = Field(ge=1, le=10)
    depends_on: list[int] = Field(default_factory=list)

    @field_validator("acceptance_criteria")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if any(not c.strip() for c in v):
            raise ValueError("acceptance criteria must not be empty strings")
        return v


class Breakdown(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks: list[PlannedTask] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _dependencies(self) -> Breakdown:
        n = len(self.tasks)
        for i, t in enumerate(self.tasks):
            for d in t.depends_on:
                if not 0 <= d < n:
                    raise ValueError(f"tasks[{i}].depends_on: {d} is not an index into tasks (0..{n - 1})")
                if d == i:
                    raise ValueError(f"tasks[{i}].depends_on: a task cannot depend on itself")
        # Kahn's algorithm: a cycle would leave tasks that never become ready.
        indegree = [len(set(t.depends_on)) for t in self.tasks]
        ready = [i for i in range(n) if indegree[i] == 0]
        seen = 0
        while ready:
            j = ready.pop()
            seen += 1
            for i, t in enumerate(self.tasks):
                if j in t.depends_on:
                    indegree[i] -= 1
                    if indegree[i] == 0:
                        ready.append(i)
        if seen != n:
            raise ValueError("depends_on forms a cycle; dependencies must point to other tasks without loops")
        return self


def breakdown_json_schema() -> dict[str, Any]:
    """The JSON schema published to the model as its structured-output format."""
    return Breakdown.model_json_schema()


class TestFailure(BaseModel):
    """One failing test from the run's JUnit XML: its id, the failure message and its output."""

    __test__ = False  # not a pytest test class, despite the name
    name: str
    message: str = ""
    output: str = ""


class TestRun(BaseModel):
    command: str
    exit_code: int | None
    passed: bool
    failed_tests: list[str] = Field(default_factory=list)
    output_tail: str = ""
    duration_ms: float = 0
    timed_out: bool = False
    failures: list[TestFailure] = Field(default_factory=list)  # from JUnit XML, when there is one


Severity = Literal["info", "low", "medium", "high"]
MAX_ATTACHMENT_BYTES = 256 * 1024  # one file a result carries (base64 in the message)
MAX_ATTACHMENTS_BYTES = 512 * 1024  # all of them together: a result must fit in one bus message


class Finding(BaseModel):
    rule: str
    path: str
    line: int | None = None
    message: str
    severity: Severity = "medium"
    tool: str = ""  # what found it: bandit, secret-scan, pip-audit, npm-audit, model-review, qa-diff


class ResultFile(BaseModel):
    """A file a stage attaches to its bug (screenshot, trace, log); stored by the orchestrator and
    served by `GET /api/attachments/{id}`. The name and type are untrusted (from the workspace)."""

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = "application/octet-stream"
    content_b64: str = Field(max_length=(MAX_ATTACHMENT_BYTES * 4) // 3 + 4)
    size: int = Field(ge=0, le=MAX_ATTACHMENT_BYTES)


class ErrorInfo(BaseModel):
    kind: str  # e.g. llm_unavailable, invalid_output, runner_crash, timeout
    message: str
    retryable: bool = False


class Usage(BaseModel):
    model: str | None = None
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_ms: float = 0
    # Money for priced models (config `cost.prices`), set by the runner; None when unpriced.
    cost_usd: float | None = None


class Result(Message):
    job_id: int
    idempotency_key: str
    project: str
    task_key: str
    stage: str
    attempt: int
    status: Verdict
    summary: str = ""
    escalate: bool = False  # a human must look (agent asked, or output kept failing)
    breakdown: Breakdown | None = None
    test_run: TestRun | None = None
    findings: list[Finding] = Field(default_factory=list)
    files: list[ResultFile] = Field(default_factory=list, max_length=20)
    # Set when the stage did not do its check and says why ("skipped: no E2E command configured").
    skipped: str | None = None
    commits: list[str] = Field(default_factory=list)
    files_changed: list[str] = Field(default_factory=list)
    error: ErrorInfo | None = None
    usage: Usage = Field(default_factory=Usage)
    runner_id: str = ""
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def answering(cls, job: Job, status: Verdict | str, summary: str = "", **fields: Any) -> Result:
        """The result of `job`, carrying its identity (execution, idempotency key, task, stage)."""
        return cls(
            job_id=job.job_id,
            idempotency_key=job.idempotency_key,
            project=job.project.slug,
            task_key=job.task.key,
            stage=job.stage,
            attempt=job.attempt,
            status=Verdict(status),
            summary=summary,
            **fields,
        )


class RunnerHeartbeat(Message):
    """Put in the wf_runners KV bucket by each runner; entries expire when a runner stops beating."""

    runner_id: str
    stages: list[str]
    pid: int
    host: str
    busy: list[str] = Field(default_factory=list)  # idempotency keys being worked on
    at: datetime = Field(default_factory=utcnow)


Role = Literal["pm", "dev", "qa", "sec", "docs", "testing"]
