"""`wf start` asks the model server, before the agents need it, whether it answers and has the
configured models (Ollama's `GET /api/tags`); what is wrong comes back as warnings that say the fix."""

from __future__ import annotations

import httpx
from wf_common.config import LLMBackendConfig


def _norm(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


def _wanted(backend: LLMBackendConfig) -> list[str]:
    return sorted({backend.model, *backend.models.values()})


async def model_server_warnings(backend: LLMBackendConfig | None, *, wait_seconds: float = 3.0) -> list[str]:
    """Warnings for this backend and its fallbacks; empty when all is well."""
    warnings: list[str] = []
    while backend is not None:
        warnings.extend(await _check(backend, wait_seconds))
        backend = backend.fallback
    return warnings


async def _check(backend: LLMBackendConfig, wait_seconds: float) -> list[str]:
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
    missing = [m for m in _wanted(backend) if _norm(m) not in have]
    return [
        f"the model server at {backend.host} does not have model {m}; agents using it will fail. "
        f"Fix: `ollama pull {m}` (or change llm_backend.model/models in config.yaml)"
        for m in missing
    ]
