"""/audit: the audit log of writes through the API, for admins (docs/api.md, Audit log).
Which routes are recorded, and when, is `function_app/http.py`'s business (`Route.audit`)."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from dtbase_core import audit
from dtbase_core.roles import Role
from dtbase_core.schemas.audit import AuditEventOut, AuditFilterIn
from function_app.http import Call, endpoint

bp = func.Blueprint()


@endpoint(
    bp,
    "audit/list-events",
    body=AuditFilterIn,
    body_required=False,
    response=list[AuditEventOut],
    role=Role.ADMIN,
    errors={403: "Only an admin can read the audit log"},
    audit=False,  # a read
)
def list_events(call: Call[AuditFilterIn]) -> Any:
    """Writes through the API, newest first, by actor, action (a route or an area),
    outcome and time; at most `limit`, the next page `before_id` the last one's id."""
    return audit.list_events(call.session, **call.body.model_dump())
