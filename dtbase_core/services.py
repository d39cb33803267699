"""Services, their parameter sets and the run log (docs/api.md, Services; Service runs).

`run-service` runs in three phases, so that nothing is held while a service works:

1. `find_run_target`: the service and the set, in a short transaction of its own;
2. `call_service`: the call, with no transaction, connection or worker thread held (httpx's
   async client, through the outbound address policy of dtbase_core/outbound.py on every
   hop, with a timeout over the whole call);
3. `log_run`: the run-log row, in a second short transaction: the reply's status code and
   JSON (object, list or scalar; null when it is not JSON) when the service answered; 504
   when it timed out, 502 when it could not be reached, 400 when the policy refused the
   address (all with `response_json` null). Nothing is locked during the call: a set
   deleted meanwhile leaves the row without a set, a service deleted meanwhile took its
   log with it.

How parameters travel: as the JSON body (no body when they are null), whatever the
method; for GET and DELETE a flat object (every value a string, number, boolean or null)
also goes as the query string. DTBase did both for GET and DELETE, and its own functions
read `req.get_json()` whatever the method. The log records
the parameters resolved for the run either way (secret-named query values masked), and
secret query values in URLs are masked in listings and replies (dtbase_core/redact.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dtbase_core import outbound, redact
from dtbase_core.config import Settings
from dtbase_core.errors import AlreadyExists, Invalid, NotFound
from dtbase_core.orm import Service, ServiceParameterSet, ServiceRunLog
from dtbase_core.orm.base import HttpMethod
from dtbase_core.timeutil import utcnow

log = logging.getLogger(__name__)
redact.install_log_filter()  # httpx logs request URLs, keys included

SERVICE_MISSING = "Service does not exist."
SET_MISSING = "Parameter set does not exist."
RUN_TARGET_MISSING = "Service or parameter set does not exist."
CALLED = "Service called successfully."

# The status codes a run-log row gets when no reply came back (response_json is null).
TIMED_OUT = 504
UNREACHABLE = 502
REFUSED = 400  # the outbound policy refused the address: nothing was sent
# Azure Functions' header for a function key; services get the deployment's key here.
SERVICE_KEY_HEADER = "x-functions-key"

BODYLESS = frozenset({HttpMethod.GET, HttpMethod.DELETE})
SCALARS = (str, int, float, bool)


def check_url(url: str, loc: tuple[str | int, ...] = ("body", "url")) -> None:
    """Only absolute http and https URLs with a host (docs/api.md, Service runs)."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise Invalid("url: must not contain spaces or control characters", loc=loc)
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except httpx.InvalidURL as exc:
        raise Invalid(f"url: {exc}", loc=loc) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Invalid(f"url: only http and https URLs with a host are accepted, got {url!r}", loc)
    if port is not None and not 0 < port < 65536:
        raise Invalid(f"url: port {port} is out of range", loc=loc)


def insert_service(
    session: Session,
    *,
    name: str,
    url: str,
    http_method: HttpMethod,
    use_service_key: bool = False,
    key_hosts: frozenset[str] = frozenset(),
) -> None:
    """`key_hosts`: where the service key may go (`Outbound.key_hosts`)."""
    check_url(url)
    if use_service_key:
        check_key_host(url, key_hosts)
    inserted = session.execute(
        insert(Service)
        .values(name=name, url=url, http_method=http_method, use_service_key=use_service_key)
        .on_conflict_do_nothing(index_elements=[Service.name])
        .returning(Service.id)
    ).scalar()
    if inserted is None:
        raise AlreadyExists("Service already exists.")


def list_services(session: Session) -> list[dict[str, Any]]:
    """Keys in URLs masked; `use_service_key` only where it is true, so that a DTBase
    client comparing the listing with what it inserted still finds its rows."""
    rows = session.execute(
        sa.select(Service.name, Service.url, Service.http_method, Service.use_service_key).order_by(
            Service.id
        )
    )
    listed = []
    for r in rows:
        item = {"name": r.name, "url": redact.mask_text(r.url), "http_method": r.http_method.value}
        if r.use_service_key:
            item["use_service_key"] = True
        listed.append(item)
    return listed


def delete_service(session: Session, *, name: str) -> None:
    """Its parameter sets and run log go with it (ON DELETE CASCADE)."""
    deleted = session.scalar(sa.delete(Service).where(Service.name == name).returning(Service.id))
    if deleted is None:
        raise NotFound(SERVICE_MISSING)


def _service_id(name: str) -> sa.ScalarSelect[int]:
    return sa.select(Service.id).where(Service.name == name).scalar_subquery()


def insert_parameter_set(
    session: Session, *, service_name: str, name: str, parameters: dict[str, Any]
) -> None:
    service_id = session.scalar(sa.select(Service.id).where(Service.name == service_name))
    if service_id is None:
        raise NotFound(SERVICE_MISSING)
    inserted = session.execute(
        insert(ServiceParameterSet)
        .values(service_id=service_id, name=name, parameters=parameters)
        .on_conflict_do_nothing(
            index_elements=[ServiceParameterSet.service_id, ServiceParameterSet.name]
        )
        .returning(ServiceParameterSet.id)
    ).scalar()
    if inserted is None:
        raise AlreadyExists("Parameter set already exists.")


def delete_parameter_set(session: Session, *, service_name: str, name: str) -> None:
    """Its runs stay in the log with no set (ON DELETE SET NULL; docs/api.md, Service runs)."""
    deleted = session.scalar(
        sa.delete(ServiceParameterSet)
        .where(
            ServiceParameterSet.service_id == _service_id(service_name),
            ServiceParameterSet.name == name,
        )
        .returning(ServiceParameterSet.id)
    )
    if deleted is None:
        raise NotFound(SET_MISSING)


def edit_parameter_set(
    session: Session, *, service_name: str, name: str, parameters: dict[str, Any]
) -> None:
    """Replace the set's whole parameter object."""
    updated = session.scalar(
        sa.update(ServiceParameterSet)
        .where(
            ServiceParameterSet.service_id == _service_id(service_name),
            ServiceParameterSet.name == name,
        )
        .values(parameters=parameters)
        .returning(ServiceParameterSet.id)
    )
    if updated is None:
        raise NotFound(SET_MISSING)


def list_parameter_sets(
    session: Session, *, service_name: str | None = None
) -> list[dict[str, Any]]:
    query = (
        sa.select(
            Service.name.label("service_name"),
            ServiceParameterSet.name,
            ServiceParameterSet.parameters,
        )
        .join(Service, Service.id == ServiceParameterSet.service_id)
        .order_by(ServiceParameterSet.id)
    )
    if service_name is not None:
        query = query.where(Service.name == service_name)
    return [dict(row._mapping) for row in session.execute(query)]


@dataclass(frozen=True)
class RunTarget:
    """What phase 1 of a run found: the service, the set and the parameters to send."""

    service_id: int
    url: str
    http_method: HttpMethod
    use_service_key: bool
    set_id: int | None
    parameters: Any


def find_run_target(
    session: Session,
    *,
    service_name: str,
    parameter_set_name: str | None = None,
    parameters: Any = None,
) -> RunTarget:
    """Phase 1: the service and the optional set; explicit parameters win over the set's,
    whose id is logged all the same (docs/api.md, Services)."""
    columns = (Service.id, Service.url, Service.http_method, Service.use_service_key)
    if parameter_set_name is None:
        found = session.execute(
            sa.select(*columns, sa.null(), sa.null()).where(Service.name == service_name)
        ).first()
    else:
        found = session.execute(
            sa.select(*columns, ServiceParameterSet.id, ServiceParameterSet.parameters)
            .join(ServiceParameterSet, ServiceParameterSet.service_id == Service.id)
            .where(Service.name == service_name, ServiceParameterSet.name == parameter_set_name)
        ).first()
    if found is None:
        raise NotFound(RUN_TARGET_MISSING)
    service_id, url, http_method, use_key, set_id, set_parameters = found
    return RunTarget(
        service_id,
        url,
        http_method,
        use_key,
        set_id,
        set_parameters if parameters is None else parameters,
    )


def _query_params(parameters: Any) -> dict[str, Any] | None:
    """A flat object goes as the query string of a GET or DELETE; anything else does not."""
    if isinstance(parameters, dict) and all(
        value is None or isinstance(value, SCALARS) for value in parameters.values()
    ):
        return parameters
    return None


def _reply_json(content: bytes) -> Any:
    """The reply's JSON (object, list or scalar), or None when it is not JSON."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _reason(exc: Exception) -> str:
    return redact.mask_text(str(exc) or type(exc).__name__)


@dataclass(frozen=True)
class RunResult:
    """Phase 2's outcome: what run-service answers (`status`, `detail`) and what the run
    log records (`status_code`, `response_json`, the parameters as logged)."""

    status: int
    detail: str
    status_code: int
    response_json: Any
    logged_parameters: Any
    started: datetime

    def reply(self) -> dict[str, Any]:
        """DTBase's `detail`, plus the service's status code and reply when it answered."""
        if self.status != 200:
            return {"detail": self.detail}
        return {
            "detail": self.detail,
            "status_code": self.status_code,
            "response_json": self.response_json,
        }


@dataclass(frozen=True)
class Outbound:
    """How phase 2 reaches services: the address policy, the service key and where it may
    go, the timeout; `transport` stands in for the network in tests."""

    policy: outbound.OutboundPolicy
    timeout: float
    service_key: str | None = None
    key_hosts: frozenset[str] = frozenset()
    transport: httpx.AsyncBaseTransport | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbound:
        allowed = settings.service_allowed_hosts
        backend_host = httpx.URL(settings.services.backend_url).host
        return cls(
            policy=outbound.OutboundPolicy.allowing(allowed),
            timeout=settings.services.service_timeout_seconds,
            service_key=settings.services.service_api_key,
            key_hosts=frozenset(outbound.normalise_host(h) for h in (*allowed, backend_host)),
        )


def check_key_host(url: str, key_hosts: frozenset[str]) -> None:
    """The service key goes only to the API's own host or an allowed host."""
    host = outbound.normalise_host(httpx.URL(url).host)
    if host not in key_hosts:
        raise Invalid(
            f"use_service_key: the service key is only sent to the API's own host or a host "
            f"in DT_SERVICE_ALLOWED_HOSTS, not to {host!r}",
            loc=("body", "use_service_key"),
        )


async def _send(target: RunTarget, parameters: Any, out: Outbound) -> tuple[int, Any]:
    address = httpx.URL(target.url)
    headers: dict[str, str] = {}
    content: bytes | None = None
    if target.http_method in BODYLESS:
        query = _query_params(parameters)
        if query:
            # Merged with the URL's own query; httpx's `params=` would replace it.
            address = address.copy_merge_params(query)
    if parameters is not None:
        content = orjson.dumps(parameters)
        headers["Content-Type"] = "application/json"
    key_header: dict[str, str] = {}
    if target.use_service_key:
        # The setting may have changed since the service was registered: checked again.
        check_key_host(target.url, out.key_hosts)
        if out.service_key:
            key_header[SERVICE_KEY_HEADER] = out.service_key
        else:
            log.warning("use_service_key is set but DT_SERVICE_API_KEY is not: no key sent")
    # No proxies or .netrc from the environment: the connection goes where it was checked.
    async with httpx.AsyncClient(
        timeout=out.timeout,
        follow_redirects=False,
        trust_env=False,
        verify=await outbound.tls_context(),
        transport=out.transport,
    ) as client:
        reply = await outbound.send(
            client,
            target.http_method.value,
            address,
            policy=out.policy,
            headers=headers,
            content=content,
            origin_headers=key_header,
        )
    return reply.status_code, _reply_json(reply.content)


async def call_service(target: RunTarget, out: Outbound) -> RunResult:
    """Phase 2: call the service, with no transaction held. Never raises for what the
    service or the network does: a timeout is 504, an unreachable service 502, an address
    the policy refuses 400, each with a run to log."""
    started = utcnow()
    parameters = target.parameters
    logged = parameters
    if target.http_method in BODYLESS and _query_params(parameters):
        logged = redact.mask_query_parameters(parameters)
    try:
        # The timeout bounds the whole call: every hop, and a reply trickling in.
        async with asyncio.timeout(out.timeout):
            status_code, response_json = await _send(target, parameters, out)
    except (TimeoutError, httpx.TimeoutException):
        detail = f"Service timed out after {out.timeout:g} s"
        return RunResult(TIMED_OUT, detail, TIMED_OUT, None, logged, started)
    except (outbound.OutboundRefused, Invalid) as exc:
        log.info("run-service refused: %s", exc.detail)
        return RunResult(REFUSED, exc.detail, REFUSED, None, logged, started)
    except httpx.ConnectError as exc:
        detail = f"Service unreachable: {_reason(exc)}"
        return RunResult(UNREACHABLE, detail, UNREACHABLE, None, logged, started)
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        detail = f"Service call failed: {_reason(exc)}"
        return RunResult(UNREACHABLE, detail, UNREACHABLE, None, logged, started)
    return RunResult(200, CALLED, status_code, redact.mask_json(response_json), logged, started)


def log_run(session: Session, target: RunTarget, result: RunResult) -> None:
    """Phase 3: the run-log row. A set deleted during the run leaves the row without a set
    (as deleting it afterwards would); a service deleted during the run took its log with
    it, so nothing is written."""
    set_id = (
        sa.select(ServiceParameterSet.id)
        .where(ServiceParameterSet.id == target.set_id)
        .scalar_subquery()
        if target.set_id is not None
        else sa.null()
    )
    row = sa.select(
        sa.literal(target.service_id),
        set_id,
        sa.literal(result.logged_parameters, ServiceRunLog.parameters.type),
        sa.literal(result.status_code),
        sa.literal(result.response_json, ServiceRunLog.response_json.type),
        sa.literal(result.started, ServiceRunLog.timestamp.type),
    ).where(sa.exists().where(Service.id == target.service_id))
    session.execute(
        sa.insert(ServiceRunLog).from_select(
            [
                "service_id",
                "parameter_set_id",
                "parameters",
                "response_status_code",
                "response_json",
                "timestamp",
            ],
            row,
        )
    )
    if result.status != 200:
        log.info("service run: %s", result.detail)


def list_runs(
    session: Session, *, service_name: str | None = None, parameter_set_name: str | None = None
) -> list[dict[str, Any]]:
    """Every run, oldest first; filtered by service, and by set within that service."""
    if parameter_set_name is not None and service_name is None:
        raise Invalid(
            "parameter_set_name needs service_name: set names are unique per service only",
            loc=("body", "parameter_set_name"),
        )
    query = (
        sa.select(
            Service.name.label("service_name"),
            ServiceParameterSet.name.label("parameter_set_name"),
            ServiceRunLog.parameters,
            ServiceRunLog.response_json,
            ServiceRunLog.response_status_code,
            ServiceRunLog.timestamp,
        )
        .join(Service, Service.id == ServiceRunLog.service_id)
        .outerjoin(ServiceParameterSet, ServiceParameterSet.id == ServiceRunLog.parameter_set_id)
        .order_by(ServiceRunLog.id)
    )
    if service_name is not None:
        query = query.where(Service.name == service_name)
    if parameter_set_name is not None:
        query = query.where(ServiceParameterSet.name == parameter_set_name)
    return [dict(row._mapping) for row in session.execute(query)]
