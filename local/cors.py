"""CORS as the Azure platform answers it for a Function App, so the local host behaves alike.

On Azure the web app (a Static Web App) and the API (the Function App) have different
origins, and the platform, not the app, answers CORS from the app's `cors.allowedOrigins`.
Locally `DT_CORS_ORIGINS` plays that list. For a listed origin a preflight is answered here
(the functions never see it) and every other reply names the origin; for any other origin,
or with no list at all, nothing is added, so the browser refuses to let the page read the
reply. No credentials mode: the web app sends bearer tokens, never cookies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# How long a browser may reuse a preflight answer, in seconds.
PREFLIGHT_MAX_AGE = "3600"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class CorsPolicy:
    """Wraps an ASGI app with the allowed-origins rule; `origins` empty means CORS closed."""

    def __init__(self, app: AsgiApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(origin.lower() for origin in origins)

    def allowed_origin(self, scope: Scope) -> str | None:
        origin = _header(scope, b"origin")
        if origin is None or origin.lower() not in self.origins:
            return None
        return origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = self.allowed_origin(scope) if scope["type"] == "http" else None
        if origin is None:
            await self.app(scope, receive, send)
            return
        requested_method = _header(scope, b"access-control-request-method")
        if scope["method"] == "OPTIONS" and requested_method is not None:
            await self._preflight(send, origin, requested_method, scope)
            return

        async def send_with_origin(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"vary", b"Origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_origin)

    async def _preflight(self, send: Send, origin: str, method: str, scope: Scope) -> None:
        headers = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", method.encode("latin-1")),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
            (b"vary", b"Origin"),
        ]
        requested_headers = _header(scope, b"access-control-request-headers")
        if requested_headers:
            headers.append((b"access-control-allow-headers", requested_headers.encode("latin-1")))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def with_cors(app: AsgiApp, origins: Iterable[str]) -> AsgiApp:
    """`app` itself when no origin is allowed, else `app` behind the CORS rule."""
    origins = tuple(origins)
    return CorsPolicy(app, origins) if origins else app
