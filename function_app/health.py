"""`GET /health`: no token; says whether the database answers (docs/api.md,
Extensions), within 2 s.

The check runs on one dedicated thread, never the shared worker pool, and is bounded: a
database that does not answer is a 503 after HEALTH_TIMEOUT_SECONDS; while that check is
still stuck, later calls answer 503 at once rather than pile up threads behind it.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import azure.functions as func
import sqlalchemy as sa

from dtbase_core.db import get_engine
from dtbase_core.schemas.common import Health
from function_app.http import Auth, endpoint, json_response

bp = func.Blueprint()

HEALTH_TIMEOUT_SECONDS = 1.5

_checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-check")
_pending: tuple[Future[None], float] | None = None  # the check under way, and its start


def _check_database() -> None:
    with get_engine().connect() as conn:
        conn.execute(sa.text("select 1"))


def _down(reason: str) -> func.HttpResponse:
    return json_response({"status": "unavailable", "database": f"down ({reason})"}, 503)


@endpoint(
    bp,
    "health",
    method="GET",
    response=Health,
    auth=Auth.NONE,
    errors={503: "The database does not answer"},
)
async def health(call: Any) -> Any:
    """200 when the API and its database are up, 503 naming what is down."""
    global _pending
    now = time.monotonic()
    if _pending is None or _pending[0].done():
        _pending = (_checker.submit(_check_database), now)
    check, started = _pending
    remaining = started + HEALTH_TIMEOUT_SECONDS - now
    if remaining <= 0:
        return _down(f"no answer for {now - started:.0f} s")
    try:
        # shield: a caller giving up must not cancel the check others share.
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(check)), remaining)
    except TimeoutError:
        return _down(f"no answer within {HEALTH_TIMEOUT_SECONDS:g} s")
    except Exception as exc:
        return _down(type(exc).__name__)
    return {"status": "ok", "database": "ok"}
