"""The shape of `GET /api/stats` (contract #6 of the brief; the dashboard and `wf stats` read it)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class RoleStats(BaseModel):
    role: str
    executions: int
    avg_seconds: float | None
    pass_rate: float | None  # passed / finished executions, 0..1
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class TaskStats(BaseModel):
    project: str
    key: str
    title: str
    executions: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    seconds: float


class ModelStats(BaseModel):
    model: str
    executions: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class HourThroughput(BaseModel):
    hour: datetime
    transitions: int


class RunningExecution(BaseModel):
    project: str
    key: str
    stage: str
    execution_id: int
    runner_id: str | None
    started_at: datetime | None


class Stats(BaseModel):
    roles: list[RoleStats]
    tasks: list[TaskStats]
    models: list[ModelStats]
    throughput: list[HourThroughput]
    running: list[RunningExecution]
