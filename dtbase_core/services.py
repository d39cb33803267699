"""Services, their parameter sets and the run log (docs/api.md, Services; Service runs).

A run goes in three phases, so that nothing is held while a service works:

1. `start_run`: the service and the set, and the run-log row (`running`), in one short
   transaction;
2. `call_service`, then `poll_location` while the service answers 202 with a `Location`:
   the calls, with no transaction, connection or worker thread held (httpx's async
   client, through the outbound address policy of dtbase_core/outbound.py on every hop,
   each call bounded by what is left of DT_SERVICE_RUN_MAX_SECONDS). function_app/services.py
   runs them as activities of a Durable orchestration (dtbase_core/service_runs.py), so
   that a run outlives the request that started it;
3. `finish_run`: the row's outcome, in a second short transaction: `completed` with the
   final reply's status code and JSON (object, list or scalar; null when it is not JSON)
   when the service answered; `failed` with 504 when it timed out, 502 when it could not
   be reached, 400 when the policy refused the address (all with `response_json` null).
   Nothing is locked during the run: a set deleted meanwhile leaves the row without a
   set, a service deleted meanwhile took its log with it.

How parameters travel: as the JSON body (no body when they are null), whatever the
method; for GET and DELETE a flat object (every value a string, number, boolean or null)
also goes as the query string. DTBase did both for GET and DELETE, and its own functions
read `req.get_json()` whatever the method. The log records
the parameters resolved for the run either way (secret-named query values masked), and
secret query values in URLs are masked in listings and replies (dtbase_core/redact.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import re
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dtbase_core import outbound, parameter_schemas, redact
from dtbase_core.config import Settings
from dtbase_core.errors import AlreadyExists, Conflict, Invalid, Missing, NotFound
from dtbase_core.orm import Service, ServiceParameterSet, ServiceRunLog, ServiceSchedule
from dtbase_core.orm.base import HttpMethod
from dtbase_core.orm.services import RunStatus
from dtbase_core.timeutil import utcnow

log = logging.getLogger(__name__)
redact.install_log_filter()  # httpx logs request URLs, keys included

SERVICE_MISSING = "Service does not exist."
SET_MISSING = "Parameter set does not exist."
RUN_TARGET_MISSING = "Service or parameter set does not exist."
CALLED = "Service called successfully."
STILL_RUNNING = "Service still running."
RUN_MISSING = "No such run."

# The status codes a run-log row gets when no reply came back (response_json is null).
TIMED_OUT = 504
UNREACHABLE = 502
REFUSED = 400  # the outbound policy refused the address: nothing was sent
# A running row's status code until the run ends (DTBase's clients expect a number).
ACCEPTED = 202
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
    parameters_schema: dict[str, Any] | None = None,
    key_hosts: frozenset[str] = frozenset(),
) -> None:
    """`key_hosts`: where the service key may go (`Outbound.key_hosts`); `parameters_schema`
    must be a valid JSON Schema (dtbase_core/parameter_schemas.py)."""
    check_url(url)
    if use_service_key:
        check_key_host(url, key_hosts)
    if parameters_schema is not None:
        parameter_schemas.check_schema(parameters_schema)
    inserted = session.execute(
        insert(Service)
        .values(
            name=name,
            url=url,
            http_method=http_method,
            use_service_key=use_service_key,
            parameters_schema=parameters_schema,
        )
        .on_conflict_do_nothing(index_elements=[Service.name])
        .returning(Service.id)
    ).scalar()
    if inserted is None:
        raise AlreadyExists("Service already exists.")


def list_services(session: Session) -> list[dict[str, Any]]:
    """Keys in URLs masked; `use_service_key` only where it is true and
    `parameters_schema` only where there is one, so that a DTBase client comparing the
    listing with what it inserted still finds its rows."""
    rows = session.execute(
        sa.select(
            Service.name,
            Service.url,
            Service.http_method,
            Service.use_service_key,
            Service.parameters_schema,
        ).order_by(Service.id)
    )
    listed = []
    for r in rows:
        item = {"name": r.name, "url": redact.mask_text(r.url), "http_method": r.http_method.value}
        if r.use_service_key:
            item["use_service_key"] = True
        if r.parameters_schema is not None:
            item["parameters_schema"] = r.parameters_schema
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
    """The parameters must satisfy the service's schema, if it has one (422 naming where)."""
    found = session.execute(
        sa.select(Service.id, Service.parameters_schema).where(Service.name == service_name)
    ).first()
    if found is None:
        raise NotFound(SERVICE_MISSING)
    service_id, schema = found
    parameter_schemas.validate(schema, parameters, service_name=service_name)
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
    """Its runs stay in the log with no set (ON DELETE SET NULL; docs/api.md, Service runs).
    A set a schedule runs is a 409 naming the schedule."""
    scheduled = session.scalars(
        sa.select(ServiceSchedule.name)
        .join(ServiceParameterSet, ServiceParameterSet.id == ServiceSchedule.parameter_set_id)
        .where(
            ServiceParameterSet.service_id == _service_id(service_name),
            ServiceParameterSet.name == name,
        )
        .order_by(ServiceSchedule.id)
    ).all()
    if scheduled:
        names = ", ".join(repr(s) for s in scheduled)
        raise Conflict(
            f"Parameter set '{name}' is used by schedule {names}: delete the schedule or "
            "give it another set first."
        )
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
    """Replace the set's whole parameter object; it must satisfy the service's schema (an
    unknown set is a 400 first)."""
    found = session.execute(
        sa.select(ServiceParameterSet.id, Service.parameters_schema)
        .join(Service, Service.id == ServiceParameterSet.service_id)
        .where(Service.name == service_name, ServiceParameterSet.name == name)
        .with_for_update(of=ServiceParameterSet)
    ).first()
    if found is None:
        raise NotFound(SET_MISSING)
    set_id, schema = found
    parameter_schemas.validate(schema, parameters, service_name=service_name)
    session.execute(
        sa.update(ServiceParameterSet)
        .where(ServiceParameterSet.id == set_id)
        .values(parameters=parameters)
    )


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

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "http_method": self.http_method.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunTarget:
        return cls(**{**data, "http_method": HttpMethod(data["http_method"])})


def find_run_target(
    session: Session,
    *,
    service_name: str,
    parameter_set_name: str | None = None,
    parameters: Any = None,
) -> RunTarget:
    """Phase 1: the service and the optional set; explicit parameters win over the set's,
    whose id is logged all the same (docs/api.md, Services). The parameters sent must
    satisfy the service's schema, if it has one (422 naming where)."""
    columns = (
        Service.id,
        Service.url,
        Service.http_method,
        Service.use_service_key,
        Service.parameters_schema,
    )
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
    service_id, url, http_method, use_key, schema, set_id, set_parameters = found
    if parameters is not None:
        parameter_schemas.validate(schema, parameters, service_name=service_name)
    elif set_id is not None:
        parameter_schemas.validate(
            schema,
            set_parameters,
            service_name=service_name,
            loc=("body", "parameter_set_name"),
            source=f"parameter set '{parameter_set_name}'",
        )
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
    """A call's outcome: what run-service answers (`status`, `detail`) and what the run
    log records (`status_code`, `response_json`). A 202 with a `Location` to poll carries
    it (absolute) and its `Retry-After` in seconds, if any."""

    status: int
    detail: str
    status_code: int
    response_json: Any
    location: str | None = None
    retry_after: float | None = None

    @property
    def answered(self) -> bool:
        """The service replied (whatever its status code): a completed run."""
        return self.status == 200

    def reply(self) -> dict[str, Any]:
        """DTBase's `detail`, plus the service's status code and reply when it answered."""
        if not self.answered:
            return {"detail": self.detail}
        return {
            "detail": self.detail,
            "status_code": self.status_code,
            "response_json": self.response_json,
        }

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        return cls(**data)

    def final(self) -> RunResult:
        """The outcome as logged: without the poll's address."""
        return dataclasses.replace(self, location=None, retry_after=None)


def timed_out(limit: float) -> RunResult:
    detail = f"Service timed out after {limit:g} s"
    return RunResult(TIMED_OUT, detail, TIMED_OUT, None)


def call_failed(reason: str) -> RunResult:
    detail = f"Service call failed: {redact.mask_text(reason)}"
    return RunResult(UNREACHABLE, detail, UNREACHABLE, None)


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
            timeout=settings.services.service_run_max_seconds,
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


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A `Retry-After` header in seconds: delay-seconds or an HTTP date; None if absent or
    unreadable."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - (now or utcnow())).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


async def _exchange(
    method: str,
    address: httpx.URL,
    out: Outbound,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    key_header: dict[str, str] | None = None,
) -> RunResult:
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
            method,
            address,
            policy=out.policy,
            headers=headers,
            content=content,
            origin_headers=key_header,
        )
    location = reply.headers.get("location")
    if reply.status_code != ACCEPTED or not location:
        location = None
    else:
        # Relative to the address asked (redirects followed on the way are not kept).
        location = str(address.join(location.strip()))
    return RunResult(
        200,
        CALLED,
        reply.status_code,
        redact.mask_json(_reply_json(reply.content)),
        location,
        retry_after_seconds(reply.headers.get("retry-after")) if location else None,
    )


def _key_header(target: RunTarget, out: Outbound) -> dict[str, str]:
    if not target.use_service_key:
        return {}
    # The setting may have changed since the service was registered: checked again.
    check_key_host(target.url, out.key_hosts)
    if out.service_key:
        return {SERVICE_KEY_HEADER: out.service_key}
    log.warning("use_service_key is set but DT_SERVICE_API_KEY is not: no key sent")
    return {}


async def _guarded(
    call: Coroutine[Any, Any, RunResult], out: Outbound, limit: float | None
) -> RunResult:
    """Never raises for what the service or the network does: a timeout is 504, an
    unreachable service 502, an address the policy refuses 400."""
    try:
        # The timeout bounds the whole call: every hop, and a reply trickling in.
        async with asyncio.timeout(out.timeout):
            return await call
    except (TimeoutError, httpx.TimeoutException):
        return timed_out(out.timeout if limit is None else limit)
    except (outbound.OutboundRefused, Invalid) as exc:
        log.info("run-service refused: %s", exc.detail)
        return RunResult(REFUSED, exc.detail, REFUSED, None)
    except httpx.ConnectError as exc:
        detail = f"Service unreachable: {_reason(exc)}"
        return RunResult(UNREACHABLE, detail, UNREACHABLE, None)
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        return call_failed(str(exc) or type(exc).__name__)  # call_failed masks it


async def call_service(
    target: RunTarget, out: Outbound, *, limit: float | None = None
) -> RunResult:
    """Phase 2: call the service, with no transaction held; `limit` is the bound a
    timeout names (default: the call's own, `out.timeout`)."""
    address = httpx.URL(target.url)
    headers: dict[str, str] = {}
    content: bytes | None = None
    if target.http_method in BODYLESS:
        query = _query_params(target.parameters)
        if query:
            # Merged with the URL's own query; httpx's `params=` would replace it.
            address = address.copy_merge_params(query)
    if target.parameters is not None:
        content = orjson.dumps(target.parameters)
        headers["Content-Type"] = "application/json"

    async def call() -> RunResult:
        return await _exchange(
            target.http_method.value,
            address,
            out,
            content=content,
            headers=headers,
            key_header=_key_header(target, out),
        )

    return await _guarded(call(), out, limit)


async def poll_location(
    target: RunTarget, location: str, out: Outbound, *, limit: float | None = None
) -> RunResult:
    """Phase 2 again, for a 202: GET its `Location`, through the same policy. The service
    key goes only where it went with the call: to the service's own origin."""

    async def call() -> RunResult:
        address = httpx.URL(location)
        key_header: dict[str, str] = {}
        if outbound.same_origin(address, httpx.URL(target.url)):
            key_header = _key_header(target, out)
        return await _exchange("GET", address, out, key_header=key_header)

    return await _guarded(call(), out, limit)


def logged_parameters(target: RunTarget) -> Any:
    """The parameters as the log shows them: sent in a query string, secret ones masked."""
    if target.http_method in BODYLESS and _query_params(target.parameters):
        return redact.mask_query_parameters(target.parameters)
    return target.parameters


def start_run(
    session: Session,
    *,
    service_name: str,
    parameter_set_name: str | None = None,
    parameters: Any = None,
    schedule_id: int | None = None,
) -> tuple[RunTarget, int]:
    """Phase 1: the target, and its run-log row (`running`); the row's id. `schedule_id`:
    the schedule that starts it (dtbase_core/schedules.py)."""
    target = find_run_target(
        session,
        service_name=service_name,
        parameter_set_name=parameter_set_name,
        parameters=parameters,
    )
    run_id = session.scalar(
        sa.insert(ServiceRunLog)
        .values(
            service_id=target.service_id,
            parameter_set_id=target.set_id,
            parameters=sa.literal(logged_parameters(target), ServiceRunLog.parameters.type),
            response_status_code=ACCEPTED,
            response_json=None,
            timestamp=utcnow(),
            status=RunStatus.RUNNING.value,
            detail=STILL_RUNNING,
            schedule_id=schedule_id,
        )
        .returning(ServiceRunLog.id)
    )
    assert run_id is not None
    return target, run_id


def finish_run(session: Session, *, run_id: int, result: RunResult) -> bool:
    """Phase 3: the row's outcome; False when there was no running row to finish (its
    service was deleted and took its log with it, or the outcome was written already:
    an activity may run twice)."""
    status = RunStatus.COMPLETED if result.answered else RunStatus.FAILED
    finished = session.scalar(
        sa.update(ServiceRunLog)
        .where(ServiceRunLog.id == run_id, ServiceRunLog.status == RunStatus.RUNNING.value)
        .values(
            status=status.value,
            response_status_code=result.status_code,
            response_json=sa.literal(result.response_json, ServiceRunLog.response_json.type),
            detail=result.detail,
            finished_at=utcnow(),
        )
        .returning(ServiceRunLog.id)
    )
    if not result.answered:
        log.info("service run %d: %s", run_id, result.detail)
    return finished is not None


_RUN_ID = re.compile(r"[0-9]{1,10}", re.ASCII)
MAX_RUN_ID = 2**31 - 1  # the column is an integer


def parse_run_id(raw: str) -> int:
    """A run id from a URL; Missing (404) for anything that cannot be one."""
    if not _RUN_ID.fullmatch(raw) or not 0 < int(raw) <= MAX_RUN_ID:
        raise Missing(RUN_MISSING)
    return int(raw)


def _run_columns() -> tuple[Any, ...]:
    return (
        ServiceRunLog.id.label("run_id"),
        Service.name.label("service_name"),
        ServiceParameterSet.name.label("parameter_set_name"),
        ServiceRunLog.parameters,
        ServiceRunLog.response_json,
        ServiceRunLog.response_status_code,
        ServiceRunLog.timestamp,
        ServiceRunLog.status,
        ServiceRunLog.detail,
        ServiceRunLog.finished_at,
        ServiceSchedule.name.label("schedule_name"),
    )


def _runs_query() -> sa.Select[Any]:
    return (
        sa.select(*_run_columns())
        .join(Service, Service.id == ServiceRunLog.service_id)
        .outerjoin(ServiceParameterSet, ServiceParameterSet.id == ServiceRunLog.parameter_set_id)
        .outerjoin(ServiceSchedule, ServiceSchedule.id == ServiceRunLog.schedule_id)
    )


def _run_detail(row: Any) -> str:
    """Rows from before details were kept: what run-service answered then."""
    if row.detail:
        return str(row.detail)
    if row.status == RunStatus.COMPLETED.value:
        return CALLED
    return f"Service run failed ({row.response_status_code})"


def _listed(row: Any) -> dict[str, Any]:
    """`schedule_name` only for a scheduled run: DTBase's clients compare the rest."""
    listed = {**row._mapping, "detail": _run_detail(row)}
    if listed["schedule_name"] is None:
        del listed["schedule_name"]
    return listed


def run_status(session: Session, *, run_id: int) -> dict[str, Any]:
    """One run as run-status shows it; Missing (404) for an unknown one."""
    row = session.execute(_runs_query().where(ServiceRunLog.id == run_id)).first()
    if row is None:
        raise Missing(RUN_MISSING)
    running = row.status == RunStatus.RUNNING.value
    return {
        "run_id": row.run_id,
        "service_name": row.service_name,
        "parameter_set_name": row.parameter_set_name,
        "parameters": row.parameters,
        "status": row.status,
        "detail": _run_detail(row),
        "status_code": None if running else row.response_status_code,
        "response_json": row.response_json,
        "started_at": row.timestamp,
        "finished_at": row.finished_at,
    }


def list_runs(
    session: Session, *, service_name: str | None = None, parameter_set_name: str | None = None
) -> list[dict[str, Any]]:
    """Every run, oldest first (by when it started); filtered by service, and by set within
    that service. DTBase's keys, plus `run_id`, `status`, `detail` and `finished_at`."""
    if parameter_set_name is not None and service_name is None:
        raise Invalid(
            "parameter_set_name needs service_name: set names are unique per service only",
            loc=("body", "parameter_set_name"),
        )
    query = _runs_query().order_by(ServiceRunLog.id)
    if service_name is not None:
        query = query.where(Service.name == service_name)
    if parameter_set_name is not None:
        query = query.where(ServiceParameterSet.name == parameter_set_name)
    return [_listed(row) for row in session.execute(query)]
