"""Fixtures for task branches and pauses: the real orchestrator (in process, on real NATS and
PostgreSQL) and a real agent runner serving DEV, against the scripted model server. The test plays
the PM (through the hub) and the human (commands); a `Model` routes each model request to a script
by the task's title, so several tasks can be scripted at once."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from wf_agent_runner.runner import Runner
from wf_agent_runner.settings import RunnerSettings
from wf_cli.embedded import NatsServer
from wf_common import bus
from wf_common.config import WorkflowConfig, parse_config

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.orchestrator.conftest import database_url, make_hub, migrated_template
from tests.orchestrator.hub import Hub
from tests.runner.helpers import MODEL

__all__ = ["database_url", "make_hub", "migrated_template"]  # fixtures of the orchestrator tests

Script = Callable[[dict[str, Any], int], Reply]  # (request body, n-th request of this task) -> reply


def sections(model_url: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "llm_backend": {"host": model_url, "model": MODEL, "timeout_seconds": 20},
        "bus": {"ack_wait_seconds": 2, "max_deliver": 3},
        "runner": {"retry_delays": [0.2], "heartbeat_seconds": 1},
        "pipeline": {
            "stages": [
                {"name": "pm", "agent": "pm", "gate": True},
                {"name": "dev", "agent": "dev"},
                {"name": "deploy", "gate": True},
            ]
        },
        "git": {"push_retry_delays": [0.3]},
    }
    for k, v in extra.items():
        data[k] = {**data.get(k, {}), **v}
    return data


@dataclass
class Model:
    """The scripted model server, answering per task title."""

    server: ScriptedOllama
    scripts: dict[str, Script] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    # A title's requests wait here while set (cleared by the test: "the model is thinking").
    holds: dict[str, threading.Event] = field(default_factory=dict)
    arrived: dict[str, threading.Event] = field(default_factory=dict)

    def script(self, title: str, script: Script) -> None:
        self.scripts[title] = script
        self.arrived[title] = threading.Event()

    def requests_of(self, title: str) -> list[dict[str, Any]]:
        return [r for r in self.server.requests if _title_in(r, title)]

    async def respond(self, body: dict[str, Any]) -> Reply:
        title = next((t for t in self.scripts if _title_in(body, t)), None)
        if title is None:
            raise AssertionError("a model request for a task no test scripted")
        n = self.counts[title] = self.counts.get(title, 0) + 1
        self.arrived[title].set()
        hold = self.holds.get(title)
        if hold is not None:
            await asyncio.to_thread(hold.wait, 30)
        return await asyncio.to_thread(self.scripts[title], body, n)  # a script may block (a barrier)


def _title_in(body: dict[str, Any], title: str) -> bool:
    return any(f": {title}" in str(m.get("content", "")) for m in body.get("messages", [])[:2])


def write_and_finish(path: str, content: str, summary: str) -> Script:
    """First request: write a file; second: finish with a pass."""

    def script(body: dict[str, Any], n: int) -> Reply:
        if n % 2 == 1:
            return Reply.tool("write_file", path=path, content=content)
        return Reply.tool("finish", status="pass", summary=summary)

    return script


@dataclass
class Rig:
    hub: Hub
    model: Model
    workspace: Path
    workflow: WorkflowConfig
    config_path: Path
    nats_url: str

    async def to_dev(self, *titles: str) -> None:
        """Submit an idea, answer the PM with one task per title, approve the breakdown."""
        await self.hub.cmd("submit_idea", project="demo", text="Build the thing")
        await self.pm_breakdown(*titles)
        await self.hub.cmd("approve", project="demo", task_key="T-001")

    async def pm_breakdown(self, *titles: str) -> None:
        """Play the PM: answer its job with one task per title; the breakdown waits at its gate."""
        job = await self.hub.next_job("pm")
        await self.hub.breakdown(
            job,
            *(
                {"title": t, "description": t, "acceptance_criteria": ["works"], "priority": 5}
                for t in titles
            ),
        )
        await self.hub.wait_state("T-001", "pm", "awaiting_approval")

    @contextlib.asynccontextmanager
    async def runner(self, runner_id: str = "runner-a", concurrency: int = 2) -> AsyncIterator[Runner]:
        settings = RunnerSettings(
            config=str(self.config_path),
            nats_url=self.nats_url,
            runner_id=runner_id,
            stages=["dev"],
            concurrency=concurrency,
        )
        nc = await bus.connect(self.nats_url, name=runner_id)
        runner = Runner(settings, nc)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        try:
            yield runner
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await nc.close()


@pytest.fixture
async def make_rig(
    make_hub: Callable[..., Any], nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    servers: list[ScriptedOllama] = []

    async def make(**extra: Any) -> Rig:
        server = ScriptedOllama(models=(MODEL,)).start()
        servers.append(server)
        model = Model(server)
        server.set_responder(model.respond)
        data = sections(server.url, **extra)
        config_path = tmp_path / "config.yaml"
        config_path.write_text(yaml.safe_dump(data), encoding="utf-8")
        workflow = parse_config(data)
        hub: Hub = await make_hub(workflow)
        workspace = tmp_path / "demo"
        await hub.project("demo", workspace, test_command="true")
        return Rig(hub, model, workspace, workflow, config_path, nats_server.url)

    yield make
    for s in servers:
        s.stop()
