"""Workflow Hub orchestrator: the single writer of workflow state.

Public: `wf_orchestrator.migrations.migrate(database_url)`, `wf_orchestrator.app.Orchestrator`.
"""
