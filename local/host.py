"""An ASGI app that serves a `func.FunctionApp` the way the Functions host would.

Requests under `/api/` go to the HTTP-triggered function whose route template and
method match (route parameters and query string passed on); other paths are the static
web app's files, with the headers, navigation fallback and 404 page of its
`staticwebapp.config.json`, as Azure Static Web Apps would serve them. Extra ASGI
handlers (the Durable management API) can be mounted under their own prefixes. CORS is
answered in front of all of it, as the Azure platform does (local/cors.py).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func

from local.cors import with_cors
from local.routing import compile_routes, find_route

log = logging.getLogger(__name__)

ROUTE_PREFIX = "/api/"
MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's own request limit

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# read_body, reply and json_reply are the host's ASGI helpers, for what it mounts too.


async def read_body(receive: Receive) -> bytes:
    """The whole request body; ValueError past the Functions host's limit."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ValueError("request body too large")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def reply(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def json_reply(send: Send, status: int, data: Any) -> None:
    """`data` as a JSON reply."""
    await reply(send, status, [(b"content-type", b"application/json")], json.dumps(data).encode())


def _response_headers(resp: func.HttpResponse) -> list[tuple[bytes, bytes]]:
    headers = [(k.lower().encode(), v.encode()) for k, v in resp.headers.items()]
    if not any(k == b"content-type" for k, _ in headers) and resp.mimetype:
        ctype = resp.mimetype + (f"; charset={resp.charset}" if resp.charset else "")
        headers.append((b"content-type", ctype.encode()))
    return headers


class StaticSite:
    """The static web app, served with its staticwebapp.config.json rules."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        config_path = self.root / "staticwebapp.config.json"
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        self.headers = [
            (k.lower().encode(), v.encode()) for k, v in config.get("globalHeaders", {}).items()
        ]
        self.fallback = (config.get("navigationFallback") or {}).get("rewrite")
        # responseOverrides.404: the page (and status) served for a path with no file.
        not_found = (config.get("responseOverrides") or {}).get("404") or {}
        self.not_found_page = not_found.get("rewrite")
        self.not_found_status = int(not_found.get("statusCode", 404))

    def resolve(self, path: str) -> Path | None:
        candidate = (self.root / path.lstrip("/")).resolve()
        if not candidate.is_relative_to(self.root):
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        if candidate.is_file():
            return candidate
        if not Path(path).suffix and candidate.with_suffix(".html").is_file():
            return candidate.with_suffix(".html")
        if self.fallback and not Path(path).suffix:
            return self.resolve(self.fallback)
        return None

    async def serve(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await json_reply(send, 405, {"detail": "Method Not Allowed"})
            return
        status = 200
        target = self.resolve(scope["path"])
        if target is None or target.name == "staticwebapp.config.json":
            target = self.resolve(self.not_found_page) if self.not_found_page else None
            if target is None:
                await json_reply(send, 404, {"detail": "Not Found"})
                return
            status = self.not_found_status
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
            ctype += "; charset=utf-8"
        headers = [
            (b"content-type", ctype.encode()),
            (b"cache-control", b"no-cache"),
            *self.headers,
        ]
        body = b"" if scope["method"] == "HEAD" else target.read_bytes()
        await reply(send, status, headers, body)


class FunctionHost:
    """ASGI application dispatching to the app's HTTP functions and static files."""

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        static_dir: Path | None = None,
        mounts: dict[str, AsgiApp] | None = None,
        on_startup: list[Callable[[], Awaitable[None] | None]] | None = None,
        on_shutdown: list[Callable[[], Awaitable[None] | None]] | None = None,
        extra_bindings: Callable[[Any, Scope], dict[str, Any]] | None = None,
        cors_origins: tuple[str, ...] = (),
    ) -> None:
        # get_functions() is not idempotent (docs/architecture.md, Pitfalls worked
        # around): index once, here.
        self.functions = app.get_functions()
        self.routes = compile_routes(self.functions)
        self.static = StaticSite(static_dir) if static_dir and static_dir.is_dir() else None
        self.mounts = mounts or {}
        self.on_startup = on_startup or []
        self.on_shutdown = on_shutdown or []
        self.extra_bindings = extra_bindings
        self._http = with_cors(self._dispatch, cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        for prefix, mounted in self.mounts.items():
            if path.startswith(prefix):
                await mounted(scope, receive, send)
                return
        if path.startswith(ROUTE_PREFIX) or path == ROUTE_PREFIX.rstrip("/"):
            await self._invoke(scope, receive, send)
        elif self.static is not None:
            await self.static.serve(scope, send)
        else:
            await json_reply(send, 404, {"detail": "Not Found"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            hooks = self.on_startup if message["type"] == "lifespan.startup" else self.on_shutdown
            try:
                for hook in hooks:
                    result = hook()
                    if inspect.isawaitable(result):
                        await result
            except Exception as exc:
                log.exception("lifespan hook failed")
                await send({"type": message["type"] + ".failed", "message": str(exc)})
                return
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    async def _invoke(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"].upper()
        sub_path = scope["path"][len(ROUTE_PREFIX) :]
        found = find_route(self.routes, sub_path, method)
        if found is None:
            await json_reply(send, 404, {"detail": "Not Found"})
            return
        route, params = found
        try:
            body = await read_body(receive)
        except ValueError:
            await json_reply(send, 413, {"detail": "Request body too large"})
            return
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            name = key.decode("latin-1")
            headers[name] = (headers[name] + ", " if name in headers else "") + value.decode(
                "latin-1"
            )
        client = scope.get("client")
        if client:
            # As Azure's front end does: the caller's address appended to X-Forwarded-For
            # (func.HttpRequest has no peer address); the app trusts it by DT_TRUSTED_PROXY_HOPS.
            forwarded = headers.get("x-forwarded-for")
            headers["x-forwarded-for"] = f"{forwarded}, {client[0]}" if forwarded else client[0]
        query = scope.get("query_string", b"").decode("latin-1")
        host = headers.get("host", "127.0.0.1")
        url = f"{scope.get('scheme', 'http')}://{host}{scope['path']}" + (
            f"?{query}" if query else ""
        )
        request = func.HttpRequest(
            method=method,
            url=url,
            headers=headers,
            params=dict(parse_qsl(query, keep_blank_values=True)),
            route_params=params,
            body=body,
        )
        fn = route.function
        kwargs: dict[str, Any] = {fn.get_trigger().name: request}
        if self.extra_bindings is not None:
            kwargs.update(self.extra_bindings(fn, scope))
        user_function = fn.get_user_function()
        try:
            if inspect.iscoroutinefunction(user_function):
                result = await user_function(**kwargs)
            else:
                result = await asyncio.to_thread(user_function, **kwargs)
        except Exception:
            log.exception("function %s raised", fn.get_function_name())
            await reply(send, 500, [(b"content-type", b"text/plain")], b"Internal Server Error")
            return
        if result is None:
            await reply(send, 204, [], b"")
        elif isinstance(result, str):
            await reply(
                send, 200, [(b"content-type", b"text/plain; charset=utf-8")], result.encode()
            )
        else:
            await reply(send, result.status_code, _response_headers(result), result.get_body())
