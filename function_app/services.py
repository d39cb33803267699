"""/service: services, parameter sets and runs (docs/api.md, Services;
Service runs).

`run-service` is an asynchronous handler: it looks the service up in one short
transaction, calls it with no transaction, connection or worker thread held, and logs the
run in a second short transaction (dtbase_core/services.py), so that slow services, or
services that call this API back, never starve the host's workers.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from dtbase_core import services
from dtbase_core.schemas.services import (
    ParameterSetFilterIn,
    ParameterSetIn,
    ParameterSetKeyIn,
    ParameterSetOut,
    RunFilterIn,
    RunServiceIn,
    RunServiceOut,
    ServiceIn,
    ServiceNameIn,
    ServiceOut,
    ServiceRunOut,
)
from function_app.http import Call, endpoint, in_transaction, json_response

bp = func.Blueprint()


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


@endpoint(bp, "service/list-services", method="GET", response=list[ServiceOut])
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
    response=RunServiceOut,
    errors={
        400: f"{services.RUN_TARGET_MISSING}, or an address the outbound policy refuses",
        502: "Service unreachable: <reason>",
        504: "Service timed out after <N> s",
    },
)
async def run_service(call: Call[RunServiceIn]) -> Any:
    """Call a service with a set's or explicit parameters and log the run (even a failed
    one); replies DTBase's detail with the service's status code and JSON reply."""
    body = call.body
    target = await in_transaction(
        lambda session: services.find_run_target(session, **body.model_dump())
    )
    result = await services.call_service(target, services.Outbound.from_settings(call.settings))
    await in_transaction(lambda session: services.log_run(session, target, result))
    return json_response(result.reply(), result.status)


@endpoint(
    bp, "service/list-runs", body=RunFilterIn, body_required=False, response=list[ServiceRunOut]
)
def list_runs(call: Call[RunFilterIn]) -> Any:
    """The run log, oldest first; by service, and by parameter set within a service."""
    return services.list_runs(call.session, **call.body.model_dump())
