"""`wf start` asks the model server, before the agents need it, whether it answers and has the
configured models (Ollama's `GET /api/tags`); what is wrong comes back as warnings that say the fix."""

from __future__ import annotations

import httpx
from wf_common.config import ROLES, LLMBackendConfig, WorkflowConfig


def _norm(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


async def model_server_warnings(config: WorkflowConfig, *, wait_seconds: float = 3.0) -> list[str]:
    """Warnings for every Ollama backend the roles use (with their fallbacks); empty when all is well.

    Other adapters (OpenAI-compatible, Anthropic) are checked by each runner at its start
    (`wf_agent_runner.llm.checks`), which knows their APIs and keys.
    """
    wanted: dict[int, tuple[LLMBackendConfig, set[str]]] = {}
    for role in ROLES:
        for entry, model in config.llm_chain(role):
            if entry.adapter == "ollama":
                wanted.setdefault(id(entry), (entry, set()))[1].add(model)
    warnings: list[str] = []
    for entry, models in wanted.values():
        warnings.extend(await _check(entry, sorted(models), wait_seconds))
    return warnings


async def _check(backend: LLMBackendConfig, models: list[str], wait_seconds: float) -> list[str]:
    url = f"{backend.host}/api/tags"
    try:
        async with httpx.AsyncClient(timeout=wait_seconds) as client:
            reply = await client.get(url)
        reply.raise_for_status()
        listed = reply.json().get("models", [])
        have = {_norm(str(m.get("name") or m.get("model") or "")) for m in listed if isinstance(m, dict)}
    except httpx.HTTPError as err:
        return [
            f"the model server at {backend.host} does not answer ({type(err).__name__}: {err}); agents will "
            f"wait for it and retry. Start it (`ollama serve`) or set llm_backend.host in config.yaml"
        ]
    except (ValueError, AttributeError) as err:
        return [
            f"the model server at {backend.host} answered {url} with something that is not Ollama's ({err})"
        ]
    missing = [m for m in models if _norm(m) not in have]
    return [
        f"the model server at {backend.host} does not have model {m}; agents using it will fail. "
        f"Fix: `ollama pull {m}` (or change llm_backend.model/models in config.yaml)"
        for m in missing
    ]
