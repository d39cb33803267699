"""Services, their parameter sets and the run log (API.md §2.6, Part A 10, §8.1 items 11-13).

`run_service` calls the service with httpx, with a timeout, and always writes a run-log
row: the reply's status code and JSON (object, list or scalar; null when it is not JSON)
when the service answered, 504 when it timed out, 502 when it could not be reached or
broke the connection (both with `response_json` null). It returns what the API answers
rather than raising, so the row is committed with the request's transaction even when
the answer is 504 or 502. The service and the set are held FOR KEY SHARE during the call:
edits go on, but a delete of either waits until the run is logged.

How parameters travel: POST and PUT send them as the JSON body (no body when they are
null). GET and DELETE never carry a body; a flat object (every value a string, number,
boolean or null) goes as the query string, anything else is not sent. The log records
the parameters resolved for the run either way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dtbase_core.errors import AlreadyExists, Invalid, NotFound
from dtbase_core.orm import Service, ServiceParameterSet, ServiceRunLog
from dtbase_core.orm.base import HttpMethod
from dtbase_core.timeutil import utcnow

log = logging.getLogger(__name__)

SERVICE_MISSING = "Service does not exist."
SET_MISSING = "Parameter set does not exist."
RUN_TARGET_MISSING = "Service or parameter set does not exist."
CALLED = "Service called successfully."

# The status codes a run-log row gets when no reply came back (response_json is null).
TIMED_OUT = 504
UNREACHABLE = 502

BODYLESS = frozenset({HttpMethod.GET, HttpMethod.DELETE})
SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class RunOutcome:
    """What `run-service` answers: 200 whatever the service's own status, 504 or 502."""

    status: int
    detail: str


def check_url(url: str, loc: tuple[str | int, ...] = ("body", "url")) -> None:
    """Only absolute http and https URLs with a host (Part A 10)."""
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


def insert_service(session: Session, *, name: str, url: str, http_method: HttpMethod) -> None:
    check_url(url)
    inserted = session.execute(
        insert(Service)
        .values(name=name, url=url, http_method=http_method)
        .on_conflict_do_nothing(index_elements=[Service.name])
        .returning(Service.id)
    ).scalar()
    if inserted is None:
        raise AlreadyExists("Service already exists.")


def list_services(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(Service.name, Service.url, Service.http_method).order_by(Service.id)
    )
    return [{"name": r.name, "url": r.url, "http_method": r.http_method.value} for r in rows]


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
    """Its runs stay in the log with no set (ON DELETE SET NULL, §8.1 item 13)."""
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
class _Target:
    service_id: int
    url: str
    http_method: HttpMethod
    set_id: int | None
    set_parameters: Any


def _resolve(session: Session, service_name: str, set_name: str | None) -> _Target:
    """The service and the optional set, locked FOR KEY SHARE for the run: a concurrent
    delete waits until the run is logged, so the log row can always be written."""
    if set_name is None:
        found = session.execute(
            sa.select(Service.id, Service.url, Service.http_method, sa.null(), sa.null())
            .where(Service.name == service_name)
            .with_for_update(read=True, key_share=True)
        ).first()
    else:
        found = session.execute(
            sa.select(
                Service.id,
                Service.url,
                Service.http_method,
                ServiceParameterSet.id,
                ServiceParameterSet.parameters,
            )
            .join(ServiceParameterSet, ServiceParameterSet.service_id == Service.id)
            .where(Service.name == service_name, ServiceParameterSet.name == set_name)
            .with_for_update(read=True, key_share=True)
        ).first()
    if found is None:
        raise NotFound(RUN_TARGET_MISSING)
    return _Target(*found)


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


def call_service(method: HttpMethod, url: str, parameters: Any, timeout: float) -> tuple[int, Any]:
    """Call a service: (status code, reply JSON or None). Raises httpx's errors.

    `timeout` bounds each phase (connect, write, each read) and the whole reply too.
    """
    address = httpx.URL(url)
    request: dict[str, Any] = {}
    if method in BODYLESS:
        query = _query_params(parameters)
        if query:
            # Merged with the URL's own query (an Azure Functions `?code=` key, say); httpx's
            # `params=` would replace it.
            address = address.copy_merge_params(query)
    elif parameters is not None:
        request["json"] = parameters
    deadline = time.monotonic() + timeout
    with (
        httpx.Client(timeout=timeout, follow_redirects=False) as client,
        client.stream(method.value, address, **request) as reply,
    ):
        content = bytearray()
        for chunk in reply.iter_bytes():
            content += chunk
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("reply not complete in time", request=reply.request)
    return reply.status_code, _reply_json(bytes(content))


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def run_service(
    session: Session,
    *,
    service_name: str,
    parameter_set_name: str | None = None,
    parameters: Any = None,
    timeout: float,
) -> RunOutcome:
    """Call the service and log the run; explicit parameters win over the set's, whose id
    is logged all the same (API.md §2.6)."""
    target = _resolve(session, service_name, parameter_set_name)
    if parameters is None:
        parameters = target.set_parameters
    started: datetime = utcnow()
    response_json: Any = None
    try:
        status_code, response_json = call_service(
            target.http_method, target.url, parameters, timeout
        )
        outcome = RunOutcome(200, CALLED)
    except httpx.TimeoutException:
        status_code = TIMED_OUT
        outcome = RunOutcome(TIMED_OUT, f"Service timed out after {timeout:g} s")
    except httpx.ConnectError as exc:
        status_code = UNREACHABLE
        outcome = RunOutcome(UNREACHABLE, f"Service unreachable: {_reason(exc)}")
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        status_code = UNREACHABLE
        outcome = RunOutcome(UNREACHABLE, f"Service call failed: {_reason(exc)}")
    if outcome.status != 200:
        log.info("service %r: %s", service_name, outcome.detail)
    session.add(
        ServiceRunLog(
            service_id=target.service_id,
            parameter_set_id=target.set_id,
            parameters=parameters,
            response_status_code=status_code,
            response_json=response_json,
            timestamp=started,
        )
    )
    session.flush()
    return outcome


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
