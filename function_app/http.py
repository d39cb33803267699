"""The one place where HTTP meets the core: body parsing, the token check, the
transaction, JSON replies and the mapping of errors to status codes.

Every endpoint is declared with `@endpoint(...)`, which registers an anonymous HTTP
function on a blueprint and records the route for the OpenAPI document. The order of
checks is DTBase's (API.md §1.2): JSON syntax, then the token, then the body's fields.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import azure.functions as func
import orjson
import pydantic
import sqlalchemy.exc as sa_exc
from pydantic import BaseModel
from sqlalchemy.orm import Session

from dtbase_core import users
from dtbase_core.config import ConfigError, Settings, get_settings
from dtbase_core.db import session_scope
from dtbase_core.errors import DomainError, Invalid, Unauthorized
from dtbase_core.schemas.common import Message
from dtbase_core.security import ACCESS, bearer_token

log = logging.getLogger(__name__)

B = TypeVar("B", bound=BaseModel)
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
# A validation error echoes the offending input; past this size it is left out.
MAX_ECHOED_INPUT = 200


@dataclass
class Route:
    """What the OpenAPI document says about one endpoint."""

    path: str
    method: str
    name: str
    tag: str
    summary: str
    body: type[BaseModel] | None
    body_required: bool
    response: Any
    status: int
    auth: str | None
    errors: dict[int, str] = field(default_factory=dict)
    media_type: str = "application/json"
    db: bool = True


ROUTES: list[Route] = []


@dataclass
class Call(Generic[B]):
    """What a handler gets: its transaction, the parsed body and the signed-in user."""

    session: Session  # None for endpoints declared with db=False
    body: B
    user: users.CurrentUser | None
    settings: Settings
    request: func.HttpRequest

    @property
    def actor(self) -> users.CurrentUser:
        assert self.user is not None, "endpoint declared without auth"
        return self.user


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        body=orjson.dumps(data, option=JSON_OPTIONS),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers=headers,
    )


def detail_response(
    status: int, detail: Any, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return json_response({"detail": detail}, status, headers)


def _echo(value: Any) -> Any:
    """The input a 422 item shows, unless it is too big to be worth sending back."""
    try:
        encoded = orjson.dumps(value, option=JSON_OPTIONS)
    except TypeError:
        return None
    return value if len(encoded) <= MAX_ECHOED_INPUT else None


def validation_response(exc: pydantic.ValidationError) -> func.HttpResponse:
    items = [
        {
            "type": err["type"],
            "loc": ["body", *err["loc"]],
            "msg": err["msg"],
            "input": _echo(err.get("input")),
        }
        for err in exc.errors(include_url=False, include_context=False)
    ]
    return detail_response(422, items)


def error_response(exc: Exception) -> func.HttpResponse:
    """Map every error a client can cause to its 4xx; anything else is a logged 500."""
    if isinstance(exc, Invalid):
        item = {"type": "value_error", "loc": list(exc.loc), "msg": exc.detail, "input": None}
        return detail_response(422, [item])
    if isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"} if exc.challenge else None
        return detail_response(401, exc.detail, headers)
    if isinstance(exc, DomainError):
        return detail_response(exc.status_code, exc.detail)
    if isinstance(exc, pydantic.ValidationError):
        return validation_response(exc)
    if isinstance(exc, sa_exc.IntegrityError):
        # A safety net: the core checks these first, but a concurrent writer can still
        # win the race between its check and its insert.
        log.info("integrity error mapped to 409: %s", exc.orig)
        return detail_response(409, f"Conflicts with existing data: {_pg_message(exc)}")
    if isinstance(exc, sa_exc.DataError):
        return detail_response(
            422, [{"type": "value_error", "loc": ["body"], "msg": _pg_message(exc), "input": None}]
        )
    if isinstance(exc, ConfigError):
        log.error("configuration error: %s", exc)
        return detail_response(503, str(exc))
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        log.error("database unavailable: %s", exc)
        return detail_response(503, "Database unavailable")
    log.exception("unhandled error", exc_info=exc)
    return func.HttpResponse("Internal Server Error", status_code=500, mimetype="text/plain")


def _pg_message(exc: sa_exc.DBAPIError) -> str:
    diag = getattr(exc.orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    detail = getattr(diag, "message_detail", None)
    return " ".join(part for part in (primary, detail) if part) or str(exc.orig)


_NO_BODY = object()


def _read_json(req: func.HttpRequest) -> Any:
    raw = req.get_body()
    if not raw or not raw.strip():
        return _NO_BODY
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        item = {
            "type": "json_invalid",
            "loc": ["body", exc.pos],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise _EarlyReply(detail_response(422, [item])) from exc


class _EarlyReply(Exception):
    def __init__(self, response: func.HttpResponse) -> None:
        self.response = response


class _Startup:
    """Per-process start-up work done before the first request (the default user)."""

    def __init__(self) -> None:
        self._done = False
        self._lock = threading.Lock()

    def mark_done(self) -> None:
        self._done = True

    def ensure(self, settings: Settings) -> None:
        if self._done:
            return
        with self._lock:
            if not self._done:
                with session_scope() as session:
                    users.ensure_default_user(session, settings.default_user_password)
                self._done = True


startup = _Startup()


def _parse_body(route: Route, raw: Any) -> Any:
    if route.body is None:
        return None
    if raw is _NO_BODY or (raw is None and not route.body_required):
        if route.body_required:
            missing = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
            raise _EarlyReply(detail_response(422, [missing]))
        return route.body.model_validate({})
    return route.body.model_validate(raw)


def dispatch(
    route: Route, handler: Callable[[Call[Any]], Any], req: func.HttpRequest
) -> func.HttpResponse:
    try:
        raw = _read_json(req) if route.method != "GET" else _NO_BODY
        settings = get_settings()
        if route.db:
            startup.ensure(settings)
            with session_scope() as session:
                user = None
                if route.auth is not None:
                    token = bearer_token(req.headers.get("Authorization"))
                    user = users.authenticate_token(session, token, route.auth, settings)
                body = _parse_body(route, raw)
                result = handler(Call(session, body, user, settings, req))
        else:  # no database: the public documents and the health check
            result = handler(Call(None, _parse_body(route, raw), None, settings, req))  # type: ignore[arg-type]
        if isinstance(result, func.HttpResponse):
            return result
        return json_response(result, route.status)
    except _EarlyReply as early:
        return early.response
    except Exception as exc:
        return error_response(exc)


def endpoint(
    bp: func.Blueprint,
    path: str,
    *,
    method: str = "POST",
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    response: Any = Message,
    status: int = 200,
    auth: str | None = ACCESS,
    errors: dict[int, str] | None = None,
    media_type: str = "application/json",
    db: bool = True,
) -> Callable[[Callable[[Call[Any]], Any]], Callable[[Call[Any]], Any]]:
    """Register `handler(call) -> JSON-able | HttpResponse` as the function for `path`."""

    tag = path.split("/", 1)[0]

    def register(handler: Callable[[Call[Any]], Any]) -> Callable[[Call[Any]], Any]:
        # Function names must match [A-Za-z][A-Za-z0-9_-]* for the Functions host.
        name = re.sub(r"[^A-Za-z0-9_]", "_", path.replace("{", "").replace("}", ""))
        route = Route(
            path=path,
            method=method,
            name=name,
            tag=tag,
            summary=(handler.__doc__ or name).strip().splitlines()[0],
            body=body,
            body_required=body_required,
            response=response,
            status=status,
            auth=auth,
            errors=errors or {},
            media_type=media_type,
            db=db,
        )
        ROUTES.append(route)

        # A fresh function, not functools.wraps: the worker reads its signature to bind
        # `req`, and must not see the handler's.
        def http_function(req: func.HttpRequest) -> func.HttpResponse:
            return dispatch(route, handler, req)

        http_function.__name__ = http_function.__qualname__ = name
        http_function.__doc__ = handler.__doc__
        bp.function_name(name=name)(
            bp.route(route=path, methods=[method], auth_level=func.AuthLevel.ANONYMOUS)(
                http_function
            )
        )
        return handler

    return register
