"""Schemathesis hooks for tests/contract/test_openapi.py (loaded through SCHEMATHESIS_HOOKS).

A project's workspace is a directory the orchestrator creates: a generated workspace that the rules
accept (say `/home/x` or `/0`) would really be made on this machine. So a valid one is replaced by a
fresh directory under $WF_FUZZ_WORKSPACES before it is sent; an invalid one is sent as generated (it
must be refused, and nothing may be created for it).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import schemathesis
from wf_common.workspaces import workspace_problem


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    operation = context.operation
    if operation is None or (operation.method.upper(), operation.path) != ("POST", "/api/projects"):
        return body
    accepted = isinstance(body, dict) and isinstance(body.get("workspace"), str)
    if accepted and workspace_problem(body["workspace"]) is None:
        return {**body, "workspace": f"{os.environ['WF_FUZZ_WORKSPACES']}/{uuid.uuid4().hex}"}
    return body
