"""The OpenAPI 3.1 document, generated from the routing table and the pydantic models.

Every request and response body is a pydantic model; their JSON Schemas (draft 2020-12, as
OpenAPI 3.1 uses) are generated together so that shared parts ($defs) become
components/schemas, and each operation refers to them. Nothing here is written by hand
except the list of error statuses every operation may answer.
"""

from __future__ import annotations

import html
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from pravah_api import __version__, models
from pravah_api.keys import DOCS_HTML, OPENAPI
from pravah_api.routing import Operation, respond

REF = "#/components/schemas/{model}"
ERROR_STATUSES = {
    400: "Malformed request (e.g. the body is not JSON).",
    401: "No token, or a token that is not accepted.",
    403: "The caller may not do this (RBAC in kubernetes mode, role/namespace in standalone mode).",
    404: "No such job, user or namespace.",
    409: "Conflict: the name is taken, the job already finished, or an Idempotency-Key was reused.",
    413: "The request body is too large.",
    422: "The body or a parameter failed validation; `field` names it.",
    502: "The Kubernetes API server or the storage gave an unexpected answer.",
    503: "The Kubernetes API server or PostgreSQL is unavailable.",
}


def build(operations: list[Operation], title: str, auth_mode: str) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], str]] = [(models.ErrorResponse, "serialization")]
    for op in operations:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        for answer in op.responses.values():
            if isinstance(answer, type) and issubclass(answer, BaseModel):
                wanted.append((answer, "serialization"))
    wanted = list(dict.fromkeys(wanted))
    refs, top = models_json_schema(wanted, ref_template=REF)
    schemas = top.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.operation_id or op.handler.__name__,
            "summary": op.summary, "tags": [op.tag], "responses": {}}
        if op.description:
            entry["description"] = op.description
        if op.public:
            entry["security"] = []
        if op.params:
            entry["parameters"] = [
                {"name": p.name, "in": p.where, "required": p.required or p.where == "path",
                 "schema": p.schema, **({"description": p.description} if p.description else {})}
                for p in op.params]
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": refs[(op.body, "validation")]}}}
        for status, answer in sorted(op.responses.items()):
            response: dict[str, Any] = {"description": (answer.__doc__ or answer.__name__).strip().splitlines()[0]
                                        if isinstance(answer, type) else "OK" if answer else "No content"}
            if isinstance(answer, type):
                response["content"] = {"application/json": {"schema": refs[(answer, "serialization")]}}
            elif isinstance(answer, dict):
                response["content"] = answer
            entry["responses"][str(status)] = response
        for status, text in ERROR_STATUSES.items():
            if op.public and status in (401, 403):
                continue
            entry["responses"].setdefault(str(status), {
                "description": text,
                "content": {"application/json": {"schema": refs[(models.ErrorResponse, "serialization")]}}})
        paths.setdefault(op.path, {})[op.method.lower()] = entry

    bearer = {"type": "http", "scheme": "bearer"}
    if auth_mode == "standalone":
        bearer["bearerFormat"] = "JWT"
        bearer["description"] = "A token from POST /auth/token."
    else:
        bearer["description"] = "A Kubernetes bearer token (e.g. a service account token); RBAC applies."
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__,
                 "description": "Create and follow PravahJobs over HTTP, with the same RBAC as kubectl."},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearerAuth": bearer}},
        "security": [{"bearerAuth": []}],
    }


async def openapi_json(request: web.Request) -> web.Response:
    return respond(request.app[OPENAPI])


def docs_html(document: dict[str, Any]) -> str:
    """A self-contained reference page (no scripts or assets from elsewhere)."""
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(document['info']['title'])}</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
             "code,pre{background:#f4f4f4;padding:.1rem .3rem}pre{padding:.5rem;overflow:auto}"
             ".m{display:inline-block;min-width:4.5rem;font-weight:bold}</style></head><body>",
             f"<h1>{esc(document['info']['title'])}</h1><p>{esc(document['info']['description'])}</p>",
             "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>"]
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            parts.append(f"<h3><span class='m'>{method.upper()}</span><code>{esc(path)}</code></h3>"
                         f"<p>{esc(op['summary'])}{' (no token needed)' if op.get('security') == [] else ''}</p>")
            if op.get("description"):
                parts.append(f"<p>{esc(op['description'])}</p>")
            for param in op.get("parameters", []):
                parts.append(f"<div>parameter <code>{esc(param['name'])}</code> in {param['in']}: "
                             f"{esc(param.get('description', ''))}</div>")
            codes = ", ".join(op["responses"])
            parts.append(f"<div>responses: {esc(codes)}</div>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(f"<details><summary><code>{esc(name)}</code></summary>"
                     f"<pre>{esc(json.dumps(schema, indent=2))}</pre></details>")
    parts.append("</body></html>")
    return "".join(parts)


async def docs(request: web.Request) -> web.Response:
    return web.Response(text=request.app[DOCS_HTML], content_type="text/html")


ROUTES = [
    Operation("GET", "/openapi.json", openapi_json, "This document (OpenAPI 3.1)", "meta",
              {200: {"application/json": {"schema": {"type": "object"}}}}, public=True),
    Operation("GET", "/docs", docs, "API reference for people", "meta",
              {200: {"text/html": {"schema": {"type": "string"}}}}, public=True),
]
