"""`/openapi.json` built from the routes `@endpoint` recorded, and `/docs` rendering it
with the vendored Swagger UI. Both need no token (as DTBase's FastAPI pages)."""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from typing import Any

import azure.functions as func
from pydantic import BaseModel, TypeAdapter

from dtbase_core.schemas.common import ValidationErrorReply
from function_app.http import (
    ROUTES,
    SERVICE_KEY_HEADER,
    TEXT_MEDIA_TYPE,
    Auth,
    Route,
    detail_response,
    endpoint,
    json_response,
)

bp = func.Blueprint()
ASSETS = Path(__file__).resolve().parent / "docs_assets"
REF = "#/components/schemas/{model}"
VERSION = "1.0.0"


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def schema_of(self, annotation: Any) -> dict[str, Any]:
        schema = TypeAdapter(annotation).json_schema(ref_template=REF)
        self.schemas.update(schema.pop("$defs", {}))
        if "title" in schema and schema.get("type") == "object":
            # A top-level model: reference it rather than inline it.
            self.schemas[schema["title"]] = schema
            return {"$ref": REF.format(model=schema["title"])}
        return schema


def _query_fields(route: Route) -> list[str]:
    """The query parameters of a `text/csv` request: the body's other fields, and those
    of a nested mapping it takes from the query (CsvMapping's)."""
    assert route.body is not None
    names: list[str] = []
    for name, info in route.body.model_fields.items():
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            names += list(nested.model_fields)
        elif name != route.text_field:
            names.append(name)
    return names


def _operation(route: Route, components: _Components) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{\*?([^}]+)\}", route.path)
    ]
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        op["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": components.schema_of(route.body)}},
        }
        if route.text_field is not None:
            # The same fields, the text one as the whole body and the rest in the query.
            op["requestBody"]["content"][TEXT_MEDIA_TYPE] = {"schema": {"type": "string"}}
            op["parameters"] = [
                *parameters,
                *(
                    {"name": name, "in": "query", "required": False, "schema": {}}
                    for name in _query_fields(route)
                ),
            ]
    if route.media_type == "application/json":
        content = {"application/json": {"schema": components.schema_of(route.response)}}
    else:
        content = {route.media_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(route.status): {"description": "Success", "content": content}}
    for status, (schema, text) in sorted(route.replies.items()):
        responses[str(status)] = {
            "description": text,
            "content": {"application/json": {"schema": components.schema_of(schema)}},
        }
    detail = {"application/json": {"schema": {"$ref": REF.format(model="Message")}}}
    for status, text in sorted(route.errors.items()):
        responses[str(status)] = {"description": text, "content": detail}
    if route.body is not None:
        responses["422"] = {
            "description": "The body is not valid JSON or does not fit the schema",
            "content": {"application/json": {"schema": components.schema_of(ValidationErrorReply)}},
        }
    if route.auth is not Auth.NONE:
        # The least role a signed-in caller needs (viewer, editor or admin).
        op["x-dtbase-role"] = route.role.value
        # Whether calls are recorded in the audit log (docs/api.md, Audit log).
        op["x-dtbase-audited"] = route.audit
        op["security"] = [{"bearer": []}]
        if route.auth is Auth.TOKEN_OR_SERVICE_KEY:
            op["security"].append({"serviceKey": []})
        responses.setdefault(
            "401",
            {
                "description": "Missing, invalid or expired token, or a token of the wrong type",
                "content": detail,
            },
        )
    op["responses"] = responses
    return op


def build_document() -> dict[str, Any]:
    components = _Components()
    components.schema_of(ValidationErrorReply)
    from dtbase_core.schemas.common import Message

    components.schema_of(Message)
    paths: dict[str, Any] = {}
    for route in ROUTES:
        # A catch-all `{*name}` is, in OpenAPI, a parameter like any other.
        path = "/" + route.path.replace("{*", "{")
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DTBase on Azure Functions",
            "version": VERSION,
            "description": "DTBase-compatible digital twin API. Sign in at /auth/login "
            "and send the access token as `Authorization: Bearer <token>`.",
        },
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "serviceKey": {"type": "apiKey", "in": "header", "name": SERVICE_KEY_HEADER},
            },
        },
    }


_document: dict[str, Any] | None = None


@endpoint(bp, "openapi.json", method="GET", response=dict[str, Any], auth=Auth.NONE, db=False)
async def openapi_json(call: Any) -> Any:
    """This document: every route, its body and its replies."""
    global _document
    if _document is None:
        _document = build_document()
    return _document


@endpoint(bp, "docs", method="GET", response=str, auth=Auth.NONE, media_type="text/html", db=False)
async def docs_page(call: Any) -> Any:
    """An interactive page rendering the OpenAPI document."""
    return func.HttpResponse(
        (ASSETS / "docs.html").read_bytes(), mimetype="text/html", charset="utf-8"
    )


@endpoint(
    bp,
    "docs/{asset}",
    method="GET",
    response=str,
    auth=Auth.NONE,
    errors={404: "No such file"},
    media_type="application/octet-stream",
    db=False,
)
async def docs_asset(call: Any) -> Any:
    """The vendored Swagger UI files the docs page loads."""
    name = call.request.route_params.get("asset", "")
    path = ASSETS / name
    if "/" in name or name.startswith(".") or not path.is_file() or name.endswith(".md"):
        return detail_response(404, "Not Found")
    mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return func.HttpResponse(
        path.read_bytes(),
        mimetype=mimetype,
        charset="utf-8" if mimetype.startswith(("text/", "application/javascript")) else None,
    )


__all__ = ["bp", "build_document", "json_response"]
