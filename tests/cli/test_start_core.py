"""`wf start` runs `orchestrator.replicas` orchestrators and checks the model server at start."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.cli.test_start import RunningHub, hubs, work
from tests.fakes.ollama import ScriptedOllama

__all__ = ["hubs", "work"]  # fixtures


def test_start_runs_the_replicas_and_warns_about_the_model_server(work: Path, hubs: list[RunningHub]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with ScriptedOllama(models=("qwen2.5-coder:7b",)) as fake:
        config = work / "config.yaml"
        config.write_text(
            "orchestrator:\n  replicas: 2\n"
            f"llm_backend:\n  host: {dead}\n"
            f"  fallback:\n    host: {fake.url}\n    model: qwen2.5-coder:7b\n"
            "    models: {pm: llama3.2:3b}\n"
        )
        hub = RunningHub(work / "data", "--config", str(config))
        hubs.append(hub)
        unreachable = hub.expect(r"model server at .* does not answer")
        missing = hub.expect(r"does not have model")
        hub.expect(rf"^Workflow Hub is up at http://127\.0\.0\.1:{hub.port}$")
    assert dead in unreachable
    assert "ollama serve" in unreachable
    assert fake.url in missing
    assert "ollama pull llama3.2:3b" in missing
    services = hub.run_json()["services"]
    assert list(services)[:2] == ["orchestrator", "orchestrator-2"]
    assert services["orchestrator"]["pid"] != services["orchestrator-2"]["pid"]
    assert hub.stop() == 0  # a clean stop takes NATS and PostgreSQL down with it
