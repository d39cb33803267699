"""/service: services, parameter sets and runs (docs/api.md, Services;
Service runs).

`run-service` is an asynchronous handler that holds no transaction, connection or worker
thread while a service works, so that slow services, or services that call this API back,
never starve the host's workers. It writes the run-log row (`running`) in one short
transaction, starts the run's orchestration (`service_run_orchestrator`, steps in
dtbase_core/service_runs.py: the call, polling a 202's Location, the outcome written into
the row, each an activity), then watches the orchestration for up to
DT_SERVICE_TIMEOUT_SECONDS: the outcome as DTBase's reply if it ended by then, else a 202
pointing at `run-status`. The run goes on without the request (Azure cuts an HTTP request
at 230 s; a task in the background would die with its instance).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import azure.durable_functions as df

from dtbase_core import service_runs, services
from dtbase_core.apikeys import Scope
from dtbase_core.config import get_settings
from dtbase_core.roles import Role
from dtbase_core.schemas.services import (
    ParameterSetFilterIn,
    ParameterSetIn,
    ParameterSetKeyIn,
    ParameterSetOut,
    RunAcceptedOut,
    RunFilterIn,
    RunServiceIn,
    RunServiceOut,
    RunStatusOut,
    ServiceIn,
    ServiceNameIn,
    ServiceOut,
    ServiceRunOut,
)
from function_app.http import (
    Call,
    detail_response,
    endpoint,
    in_transaction,
    json_response,
    route_url,
)

log = logging.getLogger(__name__)

bp = df.Blueprint()

ORCHESTRATOR = "service_run_orchestrator"
CALL = "service_run_call"
POLL = "service_run_poll"
RECORD = "service_run_record"
# run-service checks the orchestration after this long, then twice as long each time, up
# to the cap (locally, each check is a request to the management API and a query).
FIRST_CHECK_SECONDS = 0.02
MAX_CHECK_SECONDS = 0.5
RETRY_AFTER = "2"  # seconds, for those following a running run
# How an orchestration may end other than by returning the run's outcome.
ENDED_BADLY = frozenset({"Failed", "Terminated", "Canceled"})
# The record activity retries a database that is away for a moment.
RECORD_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=5)


@endpoint(
    bp,
    "service/insert-service",
    body=ServiceIn,
    status=201,
    errors={409: "Service already exists."},
)
def insert_service(call: Call[ServiceIn]) -> Any:
    """Register a service: a name, an http(s) URL and GET, POST, PUT or DELETE; with
    `use_service_key`, calls carry the deployment's service key in `x-functions-key`."""
    key_hosts = services.Outbound.from_settings(call.settings).key_hosts
    services.insert_service(call.session, **call.body.model_dump(), key_hosts=key_hosts)
    return {"detail": "Service created successfully."}


@endpoint(
    bp,
    "service/list-services",
    method="GET",
    response=list[ServiceOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_services(call: Call[None]) -> Any:
    """Every service, in the order they were registered."""
    return services.list_services(call.session)


@endpoint(bp, "service/delete-service", body=ServiceNameIn, errors={400: services.SERVICE_MISSING})
def delete_service(call: Call[ServiceNameIn]) -> Any:
    """Delete a service with its parameter sets and run log."""
    services.delete_service(call.session, name=call.body.name)
    return {"detail": "Service deleted successfully."}


@endpoint(
    bp,
    "service/insert-parameter-set",
    body=ParameterSetIn,
    status=201,
    errors={400: services.SERVICE_MISSING, 409: "Parameter set already exists."},
)
def insert_parameter_set(call: Call[ParameterSetIn]) -> Any:
    """Store a named JSON object of parameters for a service."""
    services.insert_parameter_set(call.session, **call.body.model_dump())
    return {"detail": "Parameter set created successfully."}


@endpoint(
    bp, "service/delete-parameter-set", body=ParameterSetKeyIn, errors={400: services.SET_MISSING}
)
def delete_parameter_set(call: Call[ParameterSetKeyIn]) -> Any:
    """Delete a parameter set; its runs stay in the log without a set name."""
    services.delete_parameter_set(call.session, **call.body.model_dump())
    return {"detail": "Parameter set deleted successfully."}


@endpoint(
    bp,
    "service/list-parameter-sets",
    body=ParameterSetFilterIn,
    body_required=False,
    response=list[ParameterSetOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_parameter_sets(call: Call[ParameterSetFilterIn]) -> Any:
    """Every parameter set, or one service's, in the order they were stored."""
    return services.list_parameter_sets(call.session, service_name=call.body.service_name)


@endpoint(bp, "service/edit-parameter-set", body=ParameterSetIn, errors={400: services.SET_MISSING})
def edit_parameter_set(call: Call[ParameterSetIn]) -> Any:
    """Replace a parameter set's whole parameter object."""
    services.edit_parameter_set(call.session, **call.body.model_dump())
    return {"detail": "Parameter set edited successfully."}


@endpoint(
    bp,
    "service/run-service",
    body=RunServiceIn,
    scope=Scope.SERVICES_RUN,
    response=RunServiceOut,
    replies={202: (RunAcceptedOut, "Still running: follow the run at status_url (Location)")},
    errors={
        400: f"{services.RUN_TARGET_MISSING}, or an address the outbound policy refuses",
        502: "Service unreachable: <reason>",
        503: "The run could not be started",
        504: "Service timed out after <N> s",
    },
    durable_client=True,
)
async def run_service(call: Call[RunServiceIn]) -> Any:
    """Call a service with a set's or explicit parameters and log the run (even a failed
    one); replies DTBase's detail with the service's status code and JSON reply, or 202
    with the run's status URL when it is still running after DT_SERVICE_TIMEOUT_SECONDS."""
    body = call.body
    limits = call.settings.services
    target, run_id = await in_transaction(
        lambda session: services.start_run(session, **body.model_dump())
    )
    client: df.DurableOrchestrationClient = call.durable
    instance_id = service_runs.instance_id(run_id)
    job = service_runs.RunJob(run_id, target, limits.service_run_max_seconds)
    try:
        await client.start_new(ORCHESTRATOR, instance_id, job.to_json())
    except Exception:
        log.exception("could not start %s for run %d", ORCHESTRATOR, run_id)
        failed = services.RunResult(503, "The run could not be started", 503, None)
        await _finish(run_id, failed)
        return detail_response(503, failed.detail)
    result = await _watch(client, run_id, limits.service_timeout_seconds)
    if result is None:
        status_url = route_url(call.request, f"service/run-status/{run_id}")
        accepted = {
            "detail": f"Service still running after {limits.service_timeout_seconds:g} s: "
            "follow the run at status_url",
            "run_id": run_id,
            "status_url": status_url,
        }
        return json_response(accepted, 202, {"Location": status_url, "Retry-After": RETRY_AFTER})
    return json_response(result.reply(), result.status)


async def _finish(run_id: int, result: services.RunResult) -> None:
    await in_transaction(lambda session: services.finish_run(session, run_id=run_id, result=result))


async def _ended(client: df.DurableOrchestrationClient, run_id: int) -> services.RunResult | None:
    """The run's outcome if its orchestration has ended, else None. One that ended without
    writing it (terminated, or failed past its retries) fails the run here."""
    status = await client.get_status(service_runs.instance_id(run_id))
    runtime = getattr(status.runtime_status, "value", status.runtime_status)
    if runtime == "Completed" and isinstance(status.output, dict):
        return services.RunResult.from_json(status.output)
    if runtime not in ENDED_BADLY:
        return None
    reason = str(status.output or "").strip().splitlines()
    detail = f"Service run failed: its orchestration ended {runtime}" + (
        f" ({reason[0][:200]})" if reason else ""
    )
    failed = services.RunResult(services.UNREACHABLE, detail, services.UNREACHABLE, None)
    await _finish(run_id, failed)
    return failed


async def _watch(
    client: df.DurableOrchestrationClient, run_id: int, timeout: float
) -> services.RunResult | None:
    """The run's outcome once its orchestration ends, or None after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = FIRST_CHECK_SECONDS
    while True:
        try:
            result = await _ended(client, run_id)
        except Exception:  # the status could not be read this time: the run goes on
            log.warning("run %d: could not read its orchestration's status", run_id, exc_info=True)
            result = None
        if result is not None:
            return result
        left = deadline - loop.time()
        if left <= 0:
            return None
        await asyncio.sleep(min(pause, left))
        pause = min(2 * pause, MAX_CHECK_SECONDS)


@endpoint(
    bp,
    "service/run-status/{run_id}",
    method="GET",
    response=RunStatusOut,
    replies={202: (RunStatusOut, "Still running: ask again after Retry-After (Location)")},
    errors={404: services.RUN_MISSING},
    durable_client=True,
    role=Role.VIEWER,
    scope=Scope.READ,
)
async def run_status(call: Call[None]) -> Any:
    """A service run by its id: running (202), completed or failed (200).

    Completed and failed runs carry the service's final status code and JSON reply."""
    run_id = services.parse_run_id(call.request.route_params.get("run_id", ""))
    found = await in_transaction(lambda session: services.run_status(session, run_id=run_id))
    if found["status"] == "running":
        try:
            ended = await _ended(call.durable, run_id)
        except Exception:
            log.warning("run %d: could not read its orchestration's status", run_id, exc_info=True)
            ended = None
        if ended is not None:  # it ended meanwhile, or without writing its outcome
            found = await in_transaction(
                lambda session: services.run_status(session, run_id=run_id)
            )
    if found["status"] == "running":
        here = route_url(call.request, f"service/run-status/{run_id}")
        return json_response(found, 202, {"Location": here, "Retry-After": RETRY_AFTER})
    return found


# --- the run's orchestration (dtbase_core/service_runs.py) -----------------------------


@bp.orchestration_trigger(context_name="context")
def service_run_orchestrator(context: df.DurableOrchestrationContext) -> Any:
    return (yield from service_runs.orchestrate(context, CALL, POLL, RECORD, RECORD_RETRY))


def _outbound(job: dict[str, Any]) -> services.Outbound:
    """This host's policy and key; the call bounded by what is left of the run."""
    out = services.Outbound.from_settings(get_settings())
    return dataclasses.replace(out, timeout=float(job["timeout"]))


@bp.activity_trigger(input_name="job")
async def service_run_call(job: dict[str, Any]) -> dict[str, Any]:
    """Call the service (dtbase_core/services.py, call_service); its outcome."""
    target = services.RunTarget.from_json(job["target"])
    result = await services.call_service(target, _outbound(job), limit=float(job["limit"]))
    return result.to_json()


@bp.activity_trigger(input_name="job")
async def service_run_poll(job: dict[str, Any]) -> dict[str, Any]:
    """GET a 202's Location (dtbase_core/services.py, poll_location); its outcome."""
    target = services.RunTarget.from_json(job["target"])
    result = await services.poll_location(
        target, job["location"], _outbound(job), limit=float(job["limit"])
    )
    return result.to_json()


@bp.activity_trigger(input_name="job")
async def service_run_record(job: dict[str, Any]) -> None:
    """Write the run's outcome into its run-log row (at most once: see finish_run)."""
    await _finish(int(job["run_id"]), services.RunResult.from_json(job["result"]))


@endpoint(
    bp,
    "service/list-runs",
    body=RunFilterIn,
    body_required=False,
    response=list[ServiceRunOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_runs(call: Call[RunFilterIn]) -> Any:
    """The run log, oldest first; by service, and by parameter set within a service."""
    return services.list_runs(call.session, **call.body.model_dump())
