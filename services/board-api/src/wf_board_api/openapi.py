"""The OpenAPI schema as the contract, and /docs served from this process (no CDN: it works offline).

The schema is FastAPI's, with what only the running configuration knows: the pipeline's stages, as
the `enum` of every `stage` parameter (validation refuses any other stage), and OpenAPI links (`LINKS`):
which answer's values an operation on the thing it made takes (the new project's slug, the new
task's key, the new hook's name), so a client — or Schemathesis' stateful phase — can follow them.
Swagger UI's files come from the pinned `swagger-ui-bundle` package and are served under /docs/static.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_STATIC = "/docs/static"


# Request bodies naming a stage: (component schema, property) → which stages the command takes.
_BODY_STAGES = {("MoveBody", "to_stage"): "all", ("RollbackBody", "to_stage"): "work"}


# (method, path, status) of an answer → the operations (method, path) that take its values, and which.
_PROJECT = "/api/projects/{slug}"
_TASK = "/api/projects/{slug}/tasks/{key}"
_NEW_PROJECT = {"slug": "$response.body#/project/slug"}
_NEW_TASK = {"slug": "$request.path.slug", "key": "$response.body#/task/key"}
_NEW_HOOK = {"name": "$response.body#/name"}
LINKS: dict[tuple[str, str, str], list[tuple[str, str, dict[str, str]]]] = {
    ("post", "/api/projects", "201"): [
        ("get", _PROJECT, _NEW_PROJECT),
        ("post", f"{_PROJECT}/ideas", _NEW_PROJECT),
        ("post", f"{_PROJECT}/pause", _NEW_PROJECT),
        ("post", f"{_PROJECT}/resume", _NEW_PROJECT),
    ],
    ("post", f"{_PROJECT}/ideas", "201"): [
        ("get", _TASK, _NEW_TASK),
        ("patch", _TASK, _NEW_TASK),
        *(("get", f"{_TASK}/{what}", _NEW_TASK) for what in ("executions", "diff", "output", "checkpoints")),
        *(
            ("post", f"{_TASK}/{what}", _NEW_TASK)
            for what in ("approve", "reject", "feedback", "retry", "move", "pause", "resume", "rollback")
        ),
    ],
    ("post", "/api/hooks", "201"): [
        ("delete", "/api/hooks/{name}", _NEW_HOOK),
        ("post", "/api/hooks/{name}", _NEW_HOOK),
    ],
}


def add_links(schema: dict[str, Any]) -> None:
    """Put `LINKS` in the schema, naming each target by its operationId; a target that is not in the
    schema is left out (the link would point nowhere)."""
    paths = schema.get("paths", {})
    for (method, path, status), targets in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        links = response.setdefault("links", {})
        for target_method, target_path, parameters in targets:
            target = paths.get(target_path, {}).get(target_method)
            if target is None or "operationId" not in target:
                continue
            links[target["operationId"]] = {"operationId": target["operationId"], "parameters": parameters}


def install(app: FastAPI, stages: Sequence[str], work_stages: Sequence[str] = ()) -> None:
    """Make `app.openapi()` declare the stages (all of them for `stage` parameters and moves, the agent
    work stages for rollbacks), and serve /docs with local assets."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    for parameter in operation.get("parameters", []):
                        if parameter.get("name") == "stage" and parameter.get("in") == "query":
                            _set_enum(parameter["schema"], list(stages))
            components = schema.get("components", {}).get("schemas", {})
            for (name, prop), which in _BODY_STAGES.items():
                field = components.get(name, {}).get("properties", {}).get(prop)
                if field is not None:
                    _set_enum(field, list(stages if which == "all" else work_stages))
            add_links(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(DOCS_STATIC, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — docs",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon-32x32.png",
        )


def _set_enum(schema: dict[str, Any], values: list[str]) -> None:
    """`string | null` or `string` → the same with `enum` on the string."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string":
            option["enum"] = values
