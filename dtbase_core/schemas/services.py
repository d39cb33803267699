"""Bodies and replies of /service (docs/api.md, Services; Service runs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, StrictBool

from dtbase_core.orm.base import HttpMethod
from dtbase_core.schemas.common import Body, Name

# Checked further by the core: http or https, with a host (docs/api.md, Service runs).
Url = Annotated[str, Field(min_length=1, max_length=2048)]
# A parameter set is a JSON object; `null` or a list is refused with 422 (docs/api.md, Services).
Parameters = dict[str, Any]


def _upper_case(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


# GET, POST, PUT or DELETE in any case, stored upper case (anything else is 422, not 500).
Method = Annotated[HttpMethod, BeforeValidator(_upper_case)]


class ServiceIn(Body):
    name: Name
    url: Url
    http_method: Method
    # Send the deployment's service key (DT_SERVICE_API_KEY) in `x-functions-key`: only to
    # the API's own host (DT_BACKEND_URL's) or a host in DT_SERVICE_ALLOWED_HOSTS.
    use_service_key: StrictBool = False
    # A JSON Schema for the service's parameters (docs/api.md, Parameter schemas); checked
    # to be one, then parameter sets and run parameters are checked against it.
    parameters_schema: dict[str, Any] | None = None


class ServiceOut(BaseModel):
    name: str
    # Secret query values (`code`, `key`, `appid`, `token`, `sig`) show as `***`.
    url: str
    http_method: HttpMethod
    # Listed only when true, so that DTBase's clients still find the rows they inserted.
    use_service_key: bool = False
    # Listed only when the service has one, likewise.
    parameters_schema: dict[str, Any] | None = None


class ServiceNameIn(Body):
    name: Name


class ParameterSetIn(Body):
    service_name: Name
    name: Name
    parameters: Parameters


class ParameterSetKeyIn(Body):
    service_name: Name
    name: Name


class ParameterSetFilterIn(Body):
    service_name: Name | None = None


class ParameterSetOut(BaseModel):
    service_name: str
    name: str
    parameters: Parameters


class RunServiceIn(Body):
    service_name: Name
    parameter_set_name: Name | None = None
    # Explicit parameters win over the set's; `null` or absent means "the set's, or none".
    parameters: Parameters | list[Any] | None = None


class RunServiceOut(BaseModel):
    """DTBase's `detail`, with what the service answered (its reply's JSON, or null)."""

    detail: str
    status_code: int
    response_json: Any


class RunAcceptedOut(BaseModel):
    """run-service's 202: the run goes on; follow it at `status_url` (run-status)."""

    detail: str
    run_id: int
    status_url: str


RunState = Literal["running", "completed", "failed"]


class RunStatusOut(BaseModel):
    """One run (GET /service/run-status/{run_id}): `running` until it ends; `completed`
    when the service gave its final reply (whatever its status code), `failed` when none
    came (refused 400, unreachable 502, timed out 504)."""

    run_id: int
    service_name: str
    parameter_set_name: str | None
    parameters: Any
    status: RunState
    # "Service called successfully.", "Service still running.", or why the run failed.
    detail: str
    # The final reply's status code (or 400, 502, 504 for a failed run); null while running.
    status_code: int | None
    response_json: Any
    started_at: datetime
    finished_at: datetime | None


class RunFilterIn(Body):
    service_name: Name | None = None
    # Only together with service_name (a set's name is unique per service only).
    parameter_set_name: Name | None = None


class ServiceRunOut(BaseModel):
    service_name: str
    parameter_set_name: str | None
    # Any JSON: an object, a list, a scalar or null (docs/api.md, Service runs).
    parameters: Any
    response_json: Any
    # 202 while the run is running.
    response_status_code: int
    # When the run started.
    timestamp: datetime
    # Beyond DTBase's keys: the run's id (for run-status), state, detail and end.
    run_id: int
    status: RunState
    detail: str
    finished_at: datetime | None
    # The schedule that started the run (dtbase_core/schedules.py); null for others.
    schedule_name: str | None = None
