"""API documentation that works without internet, for the worker and the coordinator.

FastAPI's own ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN, so on a machine without
internet they are blank. :func:`offline_docs` serves both from the files shipped in
``serving/static/docs/`` (versions and licences in its README), and completes the OpenAPI
document: the bearer token as a security scheme (Swagger UI's *Authorize* button), and the answers
every operation can give besides its own: 401/403 where the token is required, 413 where the body
is limited, 422 where the request is validated, 503 where the caller names it. An answer an
endpoint documents itself (``responses=``) is kept as it is.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-static"
ASSET_DIR = Path(__file__).parent / "static" / "docs"  # vendored files: its README.md

ERROR = {"type": "object", "properties": {"detail": {"description": "one sentence saying what is wrong",
                                                     "anyOf": [{"type": "string"}, {"type": "array", "items": {}}]}}}
VALIDATION = {"type": "object", "properties": {
    "detail": {"type": "array", "items": {"type": "object", "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "type": {"type": "string"}, "msg": {"type": "string", "description": "the field and what is wrong with it"},
        "input": {"description": "the rejected value, only when it is short"}}}},
    "error_count": {"type": "integer"}}}


def _answer(description: str, schema: dict[str, Any] = ERROR) -> dict[str, Any]:
    example = {"detail": description} if schema is ERROR else {
        "detail": [{"loc": ["body", "games", 0, "player_id"], "type": "greater_than",
                    "msg": "games.0.player_id: Input should be greater than 0 (got -1)", "input": -1}],
        "error_count": 1}
    return {"description": description, "content": {"application/json": {"schema": schema, "example": example}}}


def _swagger_page(title: str, openapi_url: str) -> str:
    # the settings live in the page; the script that applies them is a shipped file, so no inline code runs
    settings = json.dumps({"url": openapi_url, "dom_id": "#swagger-ui", "deepLinking": True,
                           "persistAuthorization": True, "validatorUrl": None,
                           "oauth2RedirectUrl": f"{ASSETS}/swagger-ui/oauth2-redirect.html"})
    title, settings = html.escape(title), html.escape(settings)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Swagger UI</title>
<link rel="icon" type="image/png" href="{ASSETS}/swagger-ui/favicon-32x32.png">
<link rel="stylesheet" href="{ASSETS}/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui" data-settings='{settings}'></div>
<script src="{ASSETS}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{ASSETS}/swagger-init.js"></script></body></html>"""


def _redoc_page(title: str, openapi_url: str) -> str:
    title, openapi_url = html.escape(title), html.escape(openapi_url)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - ReDoc</title>
<link rel="icon" type="image/png" href="{ASSETS}/swagger-ui/favicon-32x32.png">
<style>body {{ margin: 0; padding: 0; }}</style></head>
<body><redoc spec-url="{openapi_url}" hide-download-button="false"></redoc>
<script src="{ASSETS}/redoc/redoc.standalone.js"></script></body></html>"""


def complete_schema(schema: dict[str, Any], max_body_bytes: int | None, unavailable: Iterable[str]) -> dict[str, Any]:
    """The shared answers added to an OpenAPI document (in place). The bearer scheme itself is declared
    by ``serving.auth`` on the endpoints it guards (Swagger UI's *Authorize* sends it)."""
    unavailable = set(unavailable)
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if operation.get("security"):
                responses.setdefault("401", _answer("missing or wrong bearer token"))
                responses.setdefault("403", _answer("disabled: the server was started without WORKER_TOKEN"))
            if "requestBody" in operation and max_body_bytes is not None:
                responses.setdefault("413", _answer(f"the body is larger than {max_body_bytes:,} bytes; "
                                                    "refused before it is read"))
            if "requestBody" not in operation and not operation.get("parameters"):
                responses.pop("422", None)  # only the token header was validated, and it is optional
            else:
                responses.setdefault("422", _answer("a field is missing, has the wrong type or is out of range: each "
                                           "problem names the field (and the value when short), never the "
                                           "whole request", VALIDATION))
            if path in unavailable:
                responses.setdefault("503", _answer("nothing can answer now (no production model loaded, or "
                                                    "the warehouse is busy or unreachable): retry later"))
    return schema


def offline_docs(app: FastAPI, unavailable: Iterable[str] = ()) -> None:
    """Serve ``/docs`` and ``/redoc`` of ``app`` from the shipped assets and complete its OpenAPI
    document (``unavailable``: the paths that can answer 503). FastAPI added CDN-backed pages at
    those paths when the app was made; they are replaced here, so an app needs only this one call."""
    docs, redoc, openapi_url = app.docs_url or "/docs", app.redoc_url or "/redoc", app.openapi_url or "/openapi.json"
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in
                            {docs, redoc, app.swagger_ui_oauth2_redirect_url}]
    app.mount(ASSETS, StaticFiles(directory=ASSET_DIR), name="docs-static")
    paths = set(unavailable)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_schema(build(), app.max_body_size, paths)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    swagger_html, redoc_html = _swagger_page(app.title, openapi_url), _redoc_page(app.title, openapi_url)
    app.add_api_route(docs, lambda: HTMLResponse(swagger_html), methods=["GET"], include_in_schema=False)
    app.add_api_route(redoc, lambda: HTMLResponse(redoc_html), methods=["GET"], include_in_schema=False)
