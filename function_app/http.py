"""The one place where HTTP meets the core: how an endpoint is declared, body parsing, the
credential check, the transaction, JSON replies and the mapping of errors to status codes.

Every HTTP function is declared with `@endpoint(...)`: it registers an anonymous HTTP
function on a blueprint and records the route for the OpenAPI document and the 404/405
fallback. A request goes through two steps:

- `prepare(route, req, session)`: JSON syntax, then credentials (`Auth`) and the caller's
  role against the least role the route declares (`Role`), then the body's fields
  (DTBase's order); it answers a `Call` for the handler, or the error reply.
- `respond(route, result)`: the handler's JSON-able result, JSON bytes it encoded already,
  or its own `HttpResponse`.

A synchronous handler runs in a worker thread inside one transaction that also covered the
credential check; a transaction PostgreSQL aborts as a deadlock or serialization failure is
run again, from the credential check on, a few times (`retry_conflicts`), then answered 409.
An asynchronous handler (`async def`) runs on the event loop with no transaction or pooled
connection held: credentials are checked in a short transaction of their own first, and the
handler opens its own with `in_transaction` where it needs one.
A write (`Route.audit`) is recorded in the audit log (`dtbase_core/audit.py`, `_AuditTrail`):
a synchronous handler's row goes in its own transaction, so that it commits with the write
or not at all; a refusal once the caller is known (4xx), and an asynchronous handler's
outcome, get a short transaction of their own after the reply is made.
A public (`Auth.NONE`) asynchronous handler never waits for a thread or the database:
routes that need no database are declared `async def` so that a hung database, holding
every worker thread, cannot delay them.
Only asynchronous handlers may take a Durable client (`durable_client=True`).
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import logging
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor
from contextlib import nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

import azure.functions as func
import orjson
import pydantic
import sqlalchemy.exc as sa_exc
from psycopg import errors as pg_errors
from pydantic import BaseModel
from sqlalchemy.orm import Session

from dtbase_core import apikeys, audit, users
from dtbase_core.apikeys import KeyPrincipal, Scope
from dtbase_core.config import ConfigError, Settings, get_settings
from dtbase_core.db import NoReply, Timeouts, session_scope
from dtbase_core.errors import (
    ERROR_CODE_HEADER,
    AlreadyExists,
    DomainError,
    Forbidden,
    Invalid,
    Unauthorized,
)
from dtbase_core.roles import Role
from dtbase_core.schemas.common import Message, ReadingsBody
from dtbase_core.security import ACCESS, REFRESH, bearer_token
from dtbase_core.startup import on_start
from dtbase_core.throttle import TooManyAttempts
from dtbase_core.timeutil import JSON_OPTIONS, utcnow

log = logging.getLogger(__name__)

B = TypeVar("B")  # the body: a pydantic model, or None for routes without one
T = TypeVar("T")
# A validation error echoes the offending input; past this size it is left out.
MAX_ECHOED_INPUT = 200
# An API key comes as `Authorization: ApiKey <key>` or in this header.
API_KEY_HEADER = "X-API-Key"
API_KEY_SCHEME = "apikey"
# Azure Functions' header for a function key; services get the deployment's service key here.
SERVICE_KEY_HEADER = "x-functions-key"
# The same key as a query value, as Azure Functions also accepts it (kept for old URLs).
SERVICE_KEY_PARAM = "code"
# PostgreSQL aborts one of the transactions of a deadlock (40P01) or a serialization failure
# (40001); run again, it usually goes through. Attempts and the first backoff (seconds,
# doubled each time and jittered so that the writers involved do not meet again).
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})
CONFLICT_ATTEMPTS = 4
CONFLICT_BACKOFF = 0.05
CONFLICT_DETAIL = "conflicting concurrent write, retry"


class Auth(StrEnum):
    """Who may call a route. Checked in `prepare` and nowhere else."""

    NONE = "none"  # public: health, the API documents, sign-in
    # A user's access token (built-in or Entra ID), or an API key if the route declares
    # the scope a key needs (then `call.key` is the key and `call.user` None).
    TOKEN = "token"
    REFRESH_TOKEN = "refresh-token"  # a refresh token: /auth/refresh only
    # As TOKEN, and the key may also come in `x-functions-key` (or `?code=`): how the
    # app's own services are called by run-service with the deployment's service key
    # (DT_SERVICE_API_KEY, itself an API key).
    TOKEN_OR_SERVICE_KEY = "token-or-service-key"


_TOKEN_TYPE = {Auth.TOKEN: ACCESS, Auth.REFRESH_TOKEN: REFRESH, Auth.TOKEN_OR_SERVICE_KEY: ACCESS}


@dataclass
class Route:
    """One endpoint: what `prepare` checks and what the OpenAPI document says of it."""

    path: str
    method: str
    name: str
    tag: str
    summary: str
    body: type[BaseModel] | None
    body_required: bool
    response: Any
    status: int
    auth: Auth
    # The least role a signed-in caller needs.
    role: Role = Role.EDITOR
    # The scope an API key needs here; None: no key may call it.
    scope: Scope | None = None
    # The sensors a call names, which a key limited to some sensors must be allowed.
    sensors: Callable[[Any], Iterable[str]] | None = None
    errors: dict[int, str] = field(default_factory=dict)
    media_type: str = "application/json"
    db: bool = True  # a synchronous handler gets a transaction (`call.session`)
    # Other successful replies, each with its schema and description (a 202 "running").
    replies: dict[int, tuple[Any, str]] = field(default_factory=dict)
    # Whether a call is recorded in the audit log (`default_audit`: the writes).
    audit: bool = False
    # What a call writes, for its audit row, when the body's identifier fields do not say
    # (`dtbase_core.audit.describe_target`); takes the parsed body.
    target: Callable[[Any], str | None] | None = None
    # A body field that a `text/csv` request fills with its whole body, the other fields
    # coming from the query parameters (a CSV import); None: JSON bodies only.
    text_field: str | None = None


ROUTES: list[Route] = []


def default_audit(method: str, auth: Auth, role: Role) -> bool:
    """Whether a route is audited unless declared: a write, that is, a route with a caller
    to name that is neither a GET nor open to viewers (whose routes read)."""
    return auth is not Auth.NONE and method != "GET" and role is not Role.VIEWER


@dataclass
class Call(Generic[B]):
    """What a handler gets: the parsed body, the caller, and its transaction if it has one."""

    body: B
    user: users.CurrentUser | None
    settings: Settings
    request: func.HttpRequest
    _session: Session | None = None
    durable: Any = None  # df.DurableOrchestrationClient, for durable_client=True
    key: KeyPrincipal | None = None  # the API key, when one authenticated the call

    @property
    def session(self) -> Session:
        assert self._session is not None, "endpoint declared without a transaction"
        return self._session

    @property
    def actor(self) -> users.CurrentUser:
        assert self.user is not None, "endpoint declared without a user"
        return self.user


# --- replies -----------------------------------------------------------------------------

# Every reply: no MIME sniffing, never framed, and a content security policy. Data replies
# load nothing; the docs page (the only HTML) loads its own scripts, styles and the
# OpenAPI document, and Swagger UI sets inline styles.
DATA_CSP = "default-src 'none'; frame-ancestors 'none'"
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def secured(response: func.HttpResponse) -> func.HttpResponse:
    """`response` with the security headers (kept where a handler set its own)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    page = (response.mimetype or "").startswith("text/html")
    headers.setdefault("Content-Security-Policy", PAGE_CSP if page else DATA_CSP)
    return response


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    """`data` as JSON; `bytes` are JSON already (a reply PostgreSQL wrote: sensor-readings)."""
    return secured(
        func.HttpResponse(
            body=data if isinstance(data, bytes) else orjson.dumps(data, option=JSON_OPTIONS),
            status_code=status,
            mimetype="application/json",
            charset="utf-8",
            headers=headers,
        )
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
        items = [
            {
                "type": "value_error",
                "loc": list(loc),
                "msg": _without_field(msg, loc),
                "input": None,
            }
            for loc, msg in exc.items
        ]
        return detail_response(422, items)
    if isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"} if exc.challenge else None
        return detail_response(401, exc.detail, headers)
    if isinstance(exc, AlreadyExists):
        return detail_response(exc.status_code, exc.detail, {ERROR_CODE_HEADER: exc.code})
    if isinstance(exc, TooManyAttempts):
        return detail_response(429, exc.detail, {"Retry-After": str(exc.retry_after)})
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
    if is_write_conflict(exc):
        log.warning("write conflict, not retried further: %s", exc)
        return detail_response(409, CONFLICT_DETAIL)
    if isinstance(exc, ConfigError):
        log.error("configuration error: %s", exc)
        return detail_response(503, str(exc))
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return _database_timeout_or_down(exc)
    log.exception("unhandled error", exc_info=exc)
    return secured(
        func.HttpResponse("Internal Server Error", status_code=500, mimetype="text/plain")
    )


def _database_timeout_or_down(exc: sa_exc.SQLAlchemyError) -> func.HttpResponse:
    """A timeout names what timed out (dtbase_core/db.py bounds every wait); a lock
    waited for too long is a conflict with a concurrent write (409), the rest a 503."""
    bounds = Timeouts.from_settings(get_settings())
    orig = getattr(exc, "orig", None)
    if isinstance(orig, pg_errors.LockNotAvailable):
        log.warning("lock timeout: %s", orig)
        return detail_response(
            409,
            f"Timed out after {bounds.lock:g} s waiting for a lock held by a concurrent "
            "write; retry",
        )
    if isinstance(exc, sa_exc.TimeoutError):
        detail = f"Database busy: no free connection within {bounds.pool:g} s"
    elif isinstance(orig, pg_errors.QueryCanceled):
        detail = f"Database statement timed out after {bounds.statement:g} s"
    elif isinstance(orig, pg_errors.ConnectionTimeout):
        detail = f"Database unavailable: no connection within {bounds.connect:g} s"
    elif isinstance(orig, NoReply):
        detail = f"Database unavailable: no reply within {bounds.reply:g} s"
    else:
        detail = "Database unavailable"
    log.error("%s: %s", detail, exc)
    return detail_response(503, detail)


def _without_field(message: str, loc: tuple[str | int, ...]) -> str:
    """The core's messages start with their field ("url: ...", "readings.3: ...") for
    where no `loc` goes with them; in a 422 item `loc` names it, and clients show
    "loc: msg", so the message drops it (or a leading part of it)."""
    field, sep, rest = message.partition(": ")
    path = [str(part) for part in loc if part != "body"]
    if sep and rest and field and field.split(".") == path[: len(field.split("."))]:
        return rest
    return message


def is_write_conflict(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction may be run again."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, sa_exc.DBAPIError) and sqlstate in CONFLICT_SQLSTATES


def retry_conflicts(
    attempt: Callable[[], T],
    *,
    attempts: int = CONFLICT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> T:
    """`attempt()`, which runs one whole transaction, again after a write conflict, at
    most `attempts` times in all; the last conflict is raised."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except sa_exc.DBAPIError as exc:
            if number == attempts or not is_write_conflict(exc):
                raise
            log.info("write conflict, attempt %d of %d: %s", number, attempts, exc.orig)
            sleep(CONFLICT_BACKOFF * 2 ** (number - 1) * (0.5 + jitter()))
    raise AssertionError("unreachable")


def _pg_message(exc: sa_exc.DBAPIError) -> str:
    diag = getattr(exc.orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    detail = getattr(diag, "message_detail", None)
    return " ".join(part for part in (primary, detail) if part) or str(exc.orig)


_API_ROOT = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#]*/api/", re.IGNORECASE)


def route_url(request: func.HttpRequest, path: str) -> str:
    """The URL of the route at `path` (e.g. "service/run-status/7") on the API the request
    came to: the request's URL up to its own route, without the query string."""
    found = _API_ROOT.match(request.url)
    root = found.group(0) if found else "/api/"
    return root + path


def respond(route: Route, result: Any) -> func.HttpResponse:
    """A handler's result as the reply: its own HttpResponse, or JSON with the route's status
    (of a JSON-able result, or the bytes of one encoded already)."""
    if isinstance(result, func.HttpResponse):
        return secured(result)
    return json_response(result, route.status)


# --- the audit log -----------------------------------------------------------------------


@dataclass
class _AuditTrail:
    """A request's audit row, filled in as `prepare` learns who calls and what they name;
    written only for a route declared `audit` once the caller is known."""

    route: Route
    actor: audit.Actor | None = None
    target: str | None = None
    written: bool = False  # committed with the handler's transaction

    def know_caller(self, caller: users.CurrentUser | KeyPrincipal | None) -> None:
        if not self.route.audit:
            return
        if isinstance(caller, KeyPrincipal):
            self.actor = audit.Actor.key(caller.name)
        elif caller is not None:
            self.actor = audit.Actor.user(caller.email)

    def know_request(self, req: func.HttpRequest, raw: Any) -> None:
        """The target from the identifier fields the caller sent (parsed or not yet)."""
        if not self.route.audit:
            return
        fields = dict(req.route_params or {})
        if isinstance(raw, dict):
            fields.update(raw)
        body = self.route.body
        readings = (
            body.count_readings(raw)
            if body is not None and issubclass(body, ReadingsBody) and raw is not _NO_BODY
            else None
        )
        self.target = audit.describe_target(fields, readings)

    def know_body(self, body: Any) -> None:
        if self.route.audit and self.route.target is not None:
            self.target = self.route.target(body)

    def write(self, session: Session, status: int) -> bool:
        """The row, in `session`; whether there was one to write."""
        if not self.route.audit or self.actor is None:
            return False
        audit.record_event(
            session,
            at=utcnow(),
            actor=self.actor,
            method=self.route.method,
            route=self.route.path,
            target=self.target,
            status=status,
        )
        return True

    def write_alone(self, status: int) -> None:
        """The row in a transaction of its own, unless the handler's transaction holds it.
        The request's outcome does not depend on it: a row that cannot be written is
        logged, and the reply stands."""
        if self.written or not self.route.audit or self.actor is None:
            return
        try:
            with session_scope() as session:
                self.write(session, status)
        except Exception:
            log.exception("audit row not written: %s %s", self.route.path, status)


# --- requests ----------------------------------------------------------------------------


class _EarlyReply(Exception):
    def __init__(self, response: func.HttpResponse) -> None:
        self.response = response


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


TEXT_MEDIA_TYPE = "text/csv"


def _read_body(route: Route, req: func.HttpRequest) -> Any:
    """The JSON body, or for a route with a `text_field`, a `text/csv` body as that field
    with the query parameters as the other fields."""
    if route.method == "GET":
        return _NO_BODY
    content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if route.text_field is None or content_type != TEXT_MEDIA_TYPE:
        return _read_json(req)
    try:
        text = req.get_body().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        item = {
            "type": "unicode_decode",
            "loc": ["body", exc.start],
            "msg": "The text/csv body is not UTF-8",
            "input": None,
        }
        raise _EarlyReply(detail_response(422, [item])) from exc
    return {**req.params, route.text_field: text}


def _parse_body(route: Route, raw: Any, settings: Settings) -> Any:
    if route.body is None:
        return None
    if raw is _NO_BODY or (raw is None and not route.body_required):
        if route.body_required:
            missing = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
            raise _EarlyReply(detail_response(422, [missing]))
        return route.body.model_validate({})
    if issubclass(route.body, ReadingsBody):
        _check_readings_count(route.body.count_readings(raw), settings.max_readings_per_request)
    return route.body.model_validate(raw)


def _check_readings_count(count: int, limit: int) -> None:
    """Refuse too many readings before validation builds a Python object per value."""
    if count > limit:
        raise _EarlyReply(
            detail_response(
                413,
                f"Too many readings in one request: {count} (the limit is {limit}, "
                "DT_MAX_READINGS_PER_REQUEST); send them in several requests",
            )
        )


def client_address(req: func.HttpRequest, settings: Settings) -> str | None:
    """The caller's IP address as the trusted proxies saw it: the entry that the nearest of
    `DT_TRUSTED_PROXY_HOPS` proxies appended to X-Forwarded-For (entries further left are
    whatever the client sent). None when no proxy is trusted or the entry is not an IP."""
    hops = settings.trusted_proxy_hops
    entries = [part.strip() for part in (req.headers.get("X-Forwarded-For") or "").split(",")]
    entries = [entry for entry in entries if entry]
    if hops == 0 or len(entries) < hops:
        return None
    entry = entries[-hops]
    # Azure's front end writes `ip:port`, `[v6]:port` or a bare address.
    if entry.startswith("["):
        entry = entry[1:].partition("]")[0]
    elif entry.count(":") == 1:
        entry = entry.partition(":")[0]
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return None


def _presented_key(route: Route, req: func.HttpRequest) -> tuple[str, bool] | None:
    """The API key the request carries, and whether it came the services' old way
    (`x-functions-key` or `?code=`, on their routes only); None without one."""
    scheme, _, value = (req.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() == API_KEY_SCHEME and value.strip():
        return value.strip(), False
    if req.headers.get(API_KEY_HEADER):
        return req.headers[API_KEY_HEADER].strip(), False
    if route.auth is Auth.TOKEN_OR_SERVICE_KEY:
        legacy = req.headers.get(SERVICE_KEY_HEADER) or req.params.get(SERVICE_KEY_PARAM)
        if legacy:
            return legacy, True
    return None


def _authenticate(
    route: Route, req: func.HttpRequest, session: Session | None, settings: Settings
) -> users.CurrentUser | KeyPrincipal | None:
    if route.auth is Auth.NONE:
        return None
    assert session is not None, "credentials are checked inside a transaction"
    presented = _presented_key(route, req) if route.auth is not Auth.REFRESH_TOKEN else None
    if presented is not None:
        key, legacy = presented
        try:
            return apikeys.authenticate_key(
                session,
                key,
                now=utcnow(),
                address=client_address(req, settings),
                settings=settings,
            )
        except Unauthorized as exc:
            # The services' old header keeps its message for an unknown key.
            if legacy and exc.detail == apikeys.UNKNOWN:
                raise Unauthorized("Invalid service key") from None
            raise
    token = bearer_token(req.headers.get("Authorization"))
    return users.authenticate_token(session, token, _TOKEN_TYPE[route.auth], settings)


def _authorize(route: Route, user: users.CurrentUser | KeyPrincipal | None) -> None:
    """A 403 unless the caller's role includes the route's, or the caller's API key has the
    route's scope. An admin route's 403 says what its declaration says (DTBase's "Only an
    admin can create users")."""
    if isinstance(user, KeyPrincipal):
        if route.scope is None:
            raise Forbidden(f"API keys may not use {route.path}")
        user.require(route.scope)
        return
    if user is None or user.role.includes(route.role):
        return
    if route.role is Role.ADMIN:
        raise Forbidden(route.errors[403])
    raise Forbidden(
        f"Your role '{user.role}' may only read: {route.path} needs the '{route.role}' role"
    )


class _Startup:
    """Per-process start-up work done before the first request or timer that touches the
    database (`in_transaction`): `dtbase_core.startup.on_start` (docs/architecture.md,
    Start-up work)."""

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
                    on_start(session, settings, utcnow())
                self._done = True


startup = _Startup()


def _needs_database(route: Route) -> bool:
    return route.db or route.auth is not Auth.NONE


def prepare(
    route: Route,
    req: func.HttpRequest,
    session: Session | None = None,
    trail: _AuditTrail | None = None,
) -> Call[Any] | func.HttpResponse:
    """JSON syntax, then credentials, then the body's fields: the handler's `Call`, or the
    reply that ends the request here. Credentials other than the service key are checked in
    `session`. `trail` learns the caller and the target as they are known."""
    trail = trail or _AuditTrail(route)
    try:
        raw = _read_body(route, req)
        settings = get_settings()
        caller = _authenticate(route, req, session, settings)
        trail.know_caller(caller)
        trail.know_request(req, raw)
        _authorize(route, caller)
        body = _parse_body(route, raw, settings)
        trail.know_body(body)
        if isinstance(caller, KeyPrincipal):
            if route.sensors is not None:
                assert session is not None
                caller.check_sensors(session, route.sensors(body))
            return Call(body, None, settings, req, session, key=caller)
        return Call(body, caller, settings, req, session)
    except _EarlyReply as early:
        return early.response
    except Exception as exc:
        return error_response(exc)


def _prepare_in(
    route: Route, req: func.HttpRequest, session: Session | None, trail: _AuditTrail
) -> Call[Any] | func.HttpResponse:
    """`prepare` in the request's transaction, which a refusal commits (an audit row may
    go with it) and a 5xx (the database failed: the transaction may be broken) rolls back
    by raising _EarlyReply."""
    call = prepare(route, req, session, trail)
    if isinstance(call, func.HttpResponse) and call.status_code >= 500:
        raise _EarlyReply(call)
    return call


def _run_sync(route: Route, handler: Callable[[Call[Any]], Any], req: func.HttpRequest) -> Any:
    trail = _AuditTrail(route)
    try:
        if _needs_database(route):
            startup.ensure(get_settings())

        def attempt() -> func.HttpResponse:
            trail.actor, trail.written = None, False
            scope = session_scope() if _needs_database(route) else nullcontext(None)
            with scope as session:
                call = _prepare_in(route, req, session, trail)
                if isinstance(call, func.HttpResponse):
                    return call
                response = respond(route, handler(call))
                written = session is not None and trail.write(session, response.status_code)
            trail.written = written  # the transaction committed with its row
            return response

        response = retry_conflicts(attempt)
    except _EarlyReply as early:
        response = early.response
    except Exception as exc:
        response = error_response(exc)
    if 400 <= response.status_code < 500:  # refused: nothing written but this row
        trail.write_alone(response.status_code)
    return response


def _prepare_in_own_transaction(route: Route, req: func.HttpRequest, trail: _AuditTrail) -> Any:
    try:
        startup.ensure(get_settings())
        with session_scope() as session:
            return _prepare_in(route, req, session, trail)
    except _EarlyReply as early:
        return early.response
    except Exception as exc:
        return error_response(exc)


async def _run_async(
    route: Route,
    handler: Callable[[Call[Any]], Awaitable[Any]],
    req: func.HttpRequest,
    durable: Any = None,
) -> func.HttpResponse:
    trail = _AuditTrail(route)
    if route.auth is Auth.NONE:
        # Nothing to check in the database: no worker thread either, so that database
        # calls filling the thread pool cannot delay these routes (health, documents).
        call = prepare(route, req)
    else:
        call = await asyncio.to_thread(_prepare_in_own_transaction, route, req, trail)
    replied = False  # by the handler, whatever the status: what it did is recorded
    if isinstance(call, func.HttpResponse):
        response = call
    else:
        call.durable = durable
        try:
            response = respond(route, await handler(call))
            replied = True
        except _EarlyReply as early:
            response = early.response
        except Exception as exc:
            response = error_response(exc)
    # The handler commits its own transactions: its audit row follows in one more.
    if trail.actor is not None and (replied or 400 <= response.status_code < 500):
        await asyncio.to_thread(trail.write_alone, response.status_code)
    return response


async def in_transaction(work: Callable[[Session], T], executor: Executor | None = None) -> T:
    """For asynchronous handlers: `work(session)` in a worker thread, in one transaction;
    on `executor`'s threads if given (work that must not queue before other requests)."""

    def run() -> T:
        startup.ensure(get_settings())
        with session_scope() as session:
            return work(session)

    if executor is None:
        return await asyncio.to_thread(retry_conflicts, run)
    return await asyncio.get_running_loop().run_in_executor(executor, retry_conflicts, run)


# --- declaration -------------------------------------------------------------------------


def endpoint(
    bp: func.Blueprint,
    path: str,
    *,
    method: str = "POST",
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    response: Any = Message,
    status: int = 200,
    auth: Auth = Auth.TOKEN,
    role: Role = Role.EDITOR,
    scope: Scope | None = None,
    sensors: Callable[[Any], Iterable[str]] | None = None,
    errors: dict[int, str] | None = None,
    media_type: str = "application/json",
    db: bool = True,
    durable_client: bool = False,
    replies: dict[int, tuple[Any, str]] | None = None,
    audit: bool | None = None,
    target: Callable[[Any], str | None] | None = None,
    text_field: str | None = None,
) -> Callable[[Callable[[Call[Any]], Any]], Callable[[Call[Any]], Any]]:
    """Register `handler(call) -> JSON-able | HttpResponse` (or an `async def` returning
    one) as the function for `method path`.

    `auth` says who may call it and `role` the least role a signed-in caller needs: editor
    unless declared (reads declare `Role.VIEWER`, so a route declared without thought is
    closed to viewers, not open); `scope` the API-key scope that opens it to keys (none:
    no key may call it) and `sensors(body)` the sensors a call names, which a key limited
    to some sensors must be allowed; `db=False` gives a synchronous handler no transaction;
    `durable_client=True` (async handlers, on a `df.Blueprint`) puts a Durable client in
    `call.durable`; `replies` documents other successful replies (status → (schema,
    description)), which the handler returns as its own `HttpResponse`; `text_field` names
    the body field a `text/csv` request's whole body fills, its other fields then coming
    from the query parameters (the host's request size limit still applies).

    `audit` says whether calls are recorded in the audit log: by default the writes
    (`default_audit`); declare it where a viewer's route writes (`True`) or a route closed
    to viewers only reads (`False`). `target(body)` describes what a call writes, for a
    body whose identifier fields do not (many sensors at once)."""

    def register(handler: Callable[[Call[Any]], Any]) -> Callable[[Call[Any]], Any]:
        is_async = inspect.iscoroutinefunction(handler)
        if durable_client and not is_async:
            raise TypeError(f"{path}: a Durable client needs an async handler")
        if audit and auth is Auth.NONE:
            raise TypeError(f"{path}: a public route has no caller for the audit log to name")
        # Function names must match [A-Za-z][A-Za-z0-9_-]* for the Functions host.
        name = re.sub(r"[^A-Za-z0-9_]", "_", path.replace("{", "").replace("}", ""))
        route = Route(
            path=path,
            method=method,
            name=name,
            tag=path.split("/", 1)[0],
            summary=(handler.__doc__ or name).strip().splitlines()[0],
            body=body,
            body_required=body_required,
            response=response,
            status=status,
            auth=auth,
            role=role,
            scope=scope,
            sensors=sensors,
            errors=_with_role_limit(path, auth, role, _with_readings_limit(body, errors or {})),
            media_type=media_type,
            db=db and not is_async,
            replies=replies or {},
            audit=default_audit(method, auth, role) if audit is None else audit,
            target=target,
            text_field=text_field,
        )
        ROUTES.append(route)

        # A fresh function, not functools.wraps: the worker reads its signature to bind
        # its parameters, and must not see the handler's.
        http_function = _http_function(route, handler, is_async, durable_client)
        http_function.__name__ = http_function.__qualname__ = name
        http_function.__doc__ = handler.__doc__
        if durable_client:
            http_function = bp.durable_client_input(client_name="client")(http_function)
        bp.function_name(name=name)(
            bp.route(route=path, methods=[method], auth_level=func.AuthLevel.ANONYMOUS)(
                http_function
            )
        )
        return handler

    return register


def _with_role_limit(path: str, auth: Auth, role: Role, errors: dict[int, str]) -> dict[int, str]:
    """A route closed to some signed-in callers says so in its 403 (in the document too)."""
    if auth is Auth.NONE or role is Role.VIEWER or 403 in errors:
        return errors
    if role is Role.ADMIN:
        return {**errors, 403: f"Only an admin can use {path}"}
    return {**errors, 403: f"Needs the '{role}' role"}


def _with_readings_limit(body: type[BaseModel] | None, errors: dict[int, str]) -> dict[int, str]:
    """A body carrying readings may be refused for their number (413, in the document too)."""
    if body is not None and issubclass(body, ReadingsBody):
        return {**errors, 413: "More readings than DT_MAX_READINGS_PER_REQUEST"}
    return errors


def _http_function(
    route: Route, handler: Callable[[Call[Any]], Any], is_async: bool, durable_client: bool
) -> Callable[..., Any]:
    """The function the Functions worker calls: `req`, and `client` for a Durable client."""
    if durable_client:

        async def with_client(req: func.HttpRequest, client: Any) -> func.HttpResponse:
            return await _run_async(route, handler, req, client)

        return with_client
    if is_async:

        async def asynchronous(req: func.HttpRequest) -> func.HttpResponse:
            return await _run_async(route, handler, req)

        return asynchronous

    def synchronous(req: func.HttpRequest) -> func.HttpResponse:
        return _run_sync(route, handler, req)

    return synchronous
