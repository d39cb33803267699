"""Bodies and replies of /service (API.md §2.6, Part A 10)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from dtbase_core.orm.base import HttpMethod
from dtbase_core.schemas.common import Body, Name

# Checked further by the core: http or https, with a host (Part A 10).
Url = Annotated[str, Field(min_length=1, max_length=2048)]
# A parameter set is a JSON object; `null` or a list is refused with 422 (API.md §2.6).
Parameters = dict[str, Any]


class ServiceIn(Body):
    name: Name
    url: Url
    # Exactly GET, POST, PUT or DELETE; case matters (anything else is 422, not 500).
    http_method: HttpMethod


class ServiceOut(BaseModel):
    name: str
    url: str
    http_method: HttpMethod


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


class RunFilterIn(Body):
    service_name: Name | None = None
    # Only together with service_name (a set's name is unique per service only).
    parameter_set_name: Name | None = None


class ServiceRunOut(BaseModel):
    service_name: str
    parameter_set_name: str | None
    # Any JSON: an object, a list, a scalar or null (§8.1 item 11).
    parameters: Any
    response_json: Any
    response_status_code: int
    timestamp: datetime
