"""The one function app object: every blueprint registered on it.

The Functions worker loads it through `function_app_entry.py` at the app root; the local
host imports it directly. Start-up refuses to go on without real secrets outside local
mode (docs/api.md, Roles and tokens).
"""

from __future__ import annotations

import azure.functions as func

from dtbase_core.config import check_deployable, get_settings
from function_app import (
    alerts,
    annotation,
    apikeys,
    assets,
    audit,
    auth,
    csv_import,
    fallback,
    forecasting,
    health,
    ingress,
    locations,
    models,
    notifications,
    openapi,
    retention,
    schedules,
    sensors,
    sensorthings,
    services,
    telemetry,
    users,
)

check_deployable(get_settings())

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# The catch-all fallback goes last; every other route is more specific than it.
for blueprint in (
    auth,
    users,
    apikeys,
    locations,
    sensors,
    csv_import,
    models,
    services,
    schedules,
    retention,
    ingress,
    forecasting,
    notifications,
    alerts,
    telemetry,
    assets,
    annotation,
    sensorthings,
    audit,
    health,
    openapi,
    fallback,
):
    app.register_functions(blueprint.bp)
