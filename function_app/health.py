"""`GET /health`: no token; says whether the database answers (Part C)."""

from __future__ import annotations

from typing import Any

import azure.functions as func
import sqlalchemy as sa

from dtbase_core.db import get_engine
from dtbase_core.schemas.common import Health
from function_app.http import Auth, endpoint, json_response

bp = func.Blueprint()


@endpoint(
    bp,
    "health",
    method="GET",
    response=Health,
    auth=Auth.NONE,
    db=False,
    errors={503: "The database does not answer"},
)
def health(call: Any) -> Any:
    """200 when the API and its database are up, 503 naming what is down."""
    try:
        with get_engine().connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        reason = type(exc).__name__
        return json_response({"status": "unavailable", "database": f"down ({reason})"}, 503)
    return {"status": "ok", "database": "ok"}
