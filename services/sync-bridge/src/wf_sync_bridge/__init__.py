"""The sync bridge: mirrors Workflow Hub tasks two-way with Asana, Jira, GitHub Issues and Linear.

It keeps its own tables (PostgreSQL schema `sync`), learns about local changes from WF_EVENTS (durable
consumer `sync-bridge`) and changes local tasks only through the orchestrator's commands (wf.cmd.*).
"""
