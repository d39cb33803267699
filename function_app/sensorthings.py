"""/sta/v1.1: a read-only OGC SensorThings API v1.1 (docs/api.md, SensorThings API).

One catch-all GET route reads every resource path (`Things`, `Datastreams('3-7')/
Observations`, `Things('sensor-1')/name/$value`...) through `dtbase_core.sta`; the service
root document lists the entity sets.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from dtbase_core.apikeys import Scope
from dtbase_core.errors import Forbidden
from dtbase_core.roles import Role
from dtbase_core.sta import query
from function_app.http import Call, endpoint, route_url

bp = func.Blueprint()
ROOT = "sta/v1.1"
ERRORS = {400: "A query option or path the service cannot read", 404: "Nothing at that path"}


def _answer(call: Call[None], path: str) -> Any:
    key = call.key
    if key is not None and (key.sensors is not None or key.sensor_types is not None):
        # The entity sets are not cut down to a key's sensors.
        raise Forbidden("An API key limited to some sensors may not read the SensorThings API")
    request = call.request
    result = query.read(
        call.session,
        path,
        dict(request.params),
        base=route_url(request, ROOT + "/"),
        url=request.url.partition("?")[0],
    )
    if isinstance(result, query.RawValue):
        return func.HttpResponse(result.text, mimetype="text/plain", charset="utf-8")
    return result


@endpoint(bp, ROOT, method="GET", response=dict[str, Any], role=Role.VIEWER, scope=Scope.READ)
def service_root(call: Call[None]) -> Any:
    """The SensorThings service root: the entity sets and the conformance classes."""
    return _answer(call, "")


@endpoint(
    bp,
    ROOT + "/{*path}",
    method="GET",
    response=dict[str, Any],
    role=Role.VIEWER,
    scope=Scope.READ,
    errors=ERRORS,
)
def resource(call: Call[None]) -> Any:
    """A SensorThings resource: an entity set, an entity, a navigation path or a property,
    with $filter, $expand, $select, $orderby, $top, $skip and $count."""
    return _answer(call, call.request.route_params.get("path") or "")
