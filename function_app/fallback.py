"""Every path no other function matches: DTBase's (FastAPI's) 404, 405 and 307 replies.

Registered last with a catch-all route, which both the Functions host and the local host
try after every more specific route.
"""

from __future__ import annotations

import re
from functools import lru_cache

import azure.functions as func

from function_app.http import ROUTES, detail_response, secured

bp = func.Blueprint()


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[re.Pattern[str], str]]:
    compiled = []
    for route in ROUTES:
        regex = re.sub(
            r"\{[^}]+\}", "[^/]+", re.escape(route.path).replace(r"\{", "{").replace(r"\}", "}")
        )
        compiled.append((re.compile(f"^{regex}$", re.IGNORECASE), route.method))
    return compiled


def _methods_for(path: str) -> set[str]:
    return {method for pattern, method in _patterns() if pattern.match(path)}


@bp.function_name(name="not_found")
@bp.route(route="{*path}", auth_level=func.AuthLevel.ANONYMOUS)
async def not_found(req: func.HttpRequest) -> func.HttpResponse:
    """Async: it needs no thread, so it answers even when hung database calls hold them."""
    path = (req.route_params.get("path") or "").strip("/") if req.route_params else ""
    raw_path = req.route_params.get("path") or ""
    if raw_path.endswith("/") and _methods_for(path):
        # A trailing slash on a known path: redirect to the path without it.
        target = req.url.split("?", 1)[0].rstrip("/")
        return secured(func.HttpResponse(status_code=307, headers={"Location": target}))
    allowed = _methods_for(path)
    if allowed and req.method.upper() not in allowed:
        return detail_response(405, "Method Not Allowed", {"Allow": ", ".join(sorted(allowed))})
    return detail_response(404, "Not Found")
