"""The start-up check of every configured backend: is it reachable, is the model there, does it call
tools natively? Each finding is logged once per backend and model, and remembered so that agents of
a model without tool support use emulated tool calls from their first turn."""

from __future__ import annotations

import logging

from wf_common.config import WorkflowConfig, backend_chain

from wf_agent_runner.llm import backend_adapter
from wf_agent_runner.llm.base import Capabilities
from wf_agent_runner.llm.toolcalls import remember_capabilities

log = logging.getLogger(__name__)


async def check_backends(workflow: WorkflowConfig, roles: list[str]) -> dict[str, Capabilities]:
    """Check each distinct (backend, model) the `roles` use; never raises. Keyed by a description
    (adapter, URL, model; never the key)."""
    found: dict[str, Capabilities] = {}
    for role in roles:
        for entry, model in backend_chain(workflow.llm_backend, workflow.llm_backends, role):
            label = f"{entry.adapter} {entry.host} model {model}"
            if label in found:
                continue
            adapter = backend_adapter(entry, model)
            try:
                caps = await adapter.capabilities()
            finally:
                await adapter.aclose()
            remember_capabilities(adapter, caps)
            found[label] = caps
            if not caps.reachable:
                log.warning(
                    "LLM backend %s: %s (jobs will wait for it or use the fallback)", label, caps.detail
                )
            elif caps.model_found is False or not caps.native_tools:
                log.warning("LLM backend %s: %s", label, caps.detail)
            else:
                log.info("LLM backend %s: %s", label, caps.detail)
    return found
