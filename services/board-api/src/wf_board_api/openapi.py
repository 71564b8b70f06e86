"""The OpenAPI schema as the contract, and /docs served from this process (no CDN: it works offline).

The schema is FastAPI's, with what only the running configuration knows: the pipeline's stages, as
the `enum` of every `stage` parameter (validation refuses any other stage). Swagger UI's files come
from the pinned `swagger-ui-bundle` package and are served under /docs/static.
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
