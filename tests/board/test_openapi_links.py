"""The OpenAPI links name real operations, and following them with the values a real answer holds
reaches what was made (what Schemathesis' stateful phase does with them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from wf_board_api.openapi import LINKS
from wf_orchestrator.app import Orchestrator


def pointer(document: Any, expression: str, request_path: dict[str, str]) -> str:
    """The value of a link's runtime expression (`$response.body#/a/b` or `$request.path.x`)."""
    if expression.startswith("$request.path."):
        return request_path[expression.removeprefix("$request.path.")]
    assert expression.startswith("$response.body#/"), expression
    value = document
    for part in expression.removeprefix("$response.body#/").split("/"):
        value = value[part]
    return str(value)


def follow(schema: dict[str, Any], source: tuple[str, str, str]) -> dict[str, dict[str, str]]:
    """{target path: parameters} of the links on one answer, checking each names a real operation."""
    method, path, status = source
    links = schema["paths"][path][method]["responses"][status]["links"]
    by_id = {op["operationId"]: p for p, ops in schema["paths"].items() for op in ops.values()}
    assert len(links) == len(LINKS[source])
    return {by_id[link["operationId"]]: link["parameters"] for link in links.values()}


async def test_links_from_a_new_project_and_task_lead_to_them(
    client: httpx.AsyncClient, orchestrator: Orchestrator, tmp_path: Path
) -> None:
    schema = (await client.get("/openapi.json")).json()
    made = await client.post("/api/projects", json={"slug": "demo", "workspace": str(tmp_path / "demo")})
    assert made.status_code == 201
    targets = follow(schema, ("post", "/api/projects", "201"))
    slug = pointer(made.json(), targets["/api/projects/{slug}"]["slug"], {})
    assert (await client.get(f"/api/projects/{slug}")).json()["slug"] == "demo"

    idea = await client.post(f"/api/projects/{slug}/ideas", json={"text": "Login page"})
    assert idea.status_code == 201
    targets = follow(schema, ("post", "/api/projects/{slug}/ideas", "201"))
    parameters = targets["/api/projects/{slug}/tasks/{key}"]
    values = {name: pointer(idea.json(), e, {"slug": slug}) for name, e in parameters.items()}
    task = await client.get(f"/api/projects/{values['slug']}/tasks/{values['key']}")
    assert task.status_code == 200
    assert task.json()["title"] == "Login page"

    hook = await client.post("/api/hooks", json={"name": "ci", "project": "demo"})
    assert hook.status_code == 201
    targets = follow(schema, ("post", "/api/hooks", "201"))
    name = pointer(hook.json(), targets["/api/hooks/{name}"]["name"], {})
    assert (await client.delete(f"/api/hooks/{name}")).status_code == 200
