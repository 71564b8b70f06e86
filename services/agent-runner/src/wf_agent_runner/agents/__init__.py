"""One agent per role, on a shared base (`agents.base.Agent`)."""

from __future__ import annotations

from wf_agent_runner.agents.base import Agent, AgentContext
from wf_agent_runner.agents.dev import DevAgent
from wf_agent_runner.agents.docs import DocsAgent
from wf_agent_runner.agents.pm import PMAgent
from wf_agent_runner.agents.qa import QAAgent
from wf_agent_runner.agents.sec import SecAgent
from wf_agent_runner.agents.testing import TestingAgent

AGENTS: dict[str, type[Agent]] = {
    a.role: a for a in (PMAgent, DevAgent, QAAgent, SecAgent, DocsAgent, TestingAgent)
}


def agent_for(role: str) -> type[Agent]:
    try:
        return AGENTS[role]
    except KeyError:
        raise ValueError(f"no agent for role {role!r}; known roles: {sorted(AGENTS)}") from None


__all__ = ["AGENTS", "Agent", "AgentContext", "agent_for"]
