"""The HTTP management API at `/runtime/webhooks/durabletask/`: the subset of Durable's
API that the SDK's client and the starters' status URLs use. As on Azure, every call needs
the host's Durable system key (bindings.py says how each caller sends it); without it, 401.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qs, unquote

from local.durable.bindings import WEBHOOK_PREFIX, management_urls
from local.durable.protocol import RUNNING
from local.durable.runtime import DurableRuntime
from local.host import Receive, Scope, Send, json_reply, read_body, reply

log = logging.getLogger(__name__)


# The Durable Task Framework's rule for instance ids: 1 to 100 characters, none of them
# '/', '\\', '#', '?' or a control character.
INVALID_INSTANCE_ID = (
    "Instance IDs must be 1 to 100 characters, without '/', '\\', '#', '?' or control characters"
)


def valid_instance_id(instance_id: str) -> bool:
    return 0 < len(instance_id) <= 100 and not any(
        ch in "/\\#?" or ord(ch) < 32 or ord(ch) == 127 for ch in instance_id
    )


def presented_key(scope: Scope, query: dict[str, str]) -> str | None:
    """The key a request carries: `code=`, `x-functions-key`, or the basic-auth password."""
    if query.get("code"):
        return query["code"]
    for name, value in scope.get("headers", []):
        if name == b"x-functions-key":
            return value.decode("latin-1")
        if name == b"authorization" and value[:6].lower() == b"basic ":
            try:
                decoded = base64.b64decode(value[6:].strip(), validate=True).decode("latin-1")
            except (binascii.Error, ValueError):
                return None
            return decoded.partition(":")[2]
    return None


def _origin(scope: dict[str, Any]) -> str:
    for key, value in scope.get("headers", []):
        if key == b"host":
            return f"{scope.get('scheme', 'http')}://{value.decode('latin-1')}"
    host, port = scope.get("server") or ("127.0.0.1", 80)
    return f"{scope.get('scheme', 'http')}://{host}:{port}"


def _body_input(body: bytes) -> str | None:
    """The SDK posts its input JSON once more encoded as a JSON string; a plain client
    posts the JSON itself. Either way: the input's JSON text, or None."""
    if not body.strip():
        return None
    value = json.loads(body)
    if isinstance(value, str):
        try:
            json.loads(value)
            return value
        except ValueError:
            return json.dumps(value)
    return json.dumps(value)


class ManagementApi:
    """ASGI handler for `WEBHOOK_PREFIX`, for one runtime and its system key."""

    def __init__(self, runtime: DurableRuntime, system_key: str) -> None:
        self.runtime = runtime
        self.system_key = system_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"].upper()
        parts = [unquote(p) for p in scope["path"][len(WEBHOOK_PREFIX) :].split("/") if p]
        query = {
            k: v[-1]
            for k, v in parse_qs(scope.get("query_string", b"").decode(errors="replace")).items()
        }
        key = presented_key(scope, query)
        if key is None:
            await json_reply(send, 401, {"Message": "A system key is required (code=...)"})
            return
        if not hmac.compare_digest(key.encode(), self.system_key.encode()):
            await json_reply(send, 401, {"Message": "The system key is not valid"})
            return
        try:
            body = await read_body(receive)
        except ValueError:
            await json_reply(send, 413, {"Message": "Request body too large"})
            return
        rt = self.runtime
        try:
            if parts[:1] == ["orchestrators"] and len(parts) in (2, 3) and method == "POST":
                name, instance_id = parts[1], (parts[2] if len(parts) == 3 else None)
                if instance_id is not None and not valid_instance_id(instance_id):
                    await json_reply(send, 400, {"Message": INVALID_INSTANCE_ID})
                    return
                try:
                    input_json = _body_input(body)
                    created = await asyncio.to_thread(rt.start_new, name, instance_id, input_json)
                except (LookupError, ValueError) as exc:
                    await json_reply(send, 400, {"ExceptionMessage": str(exc).strip("'\"")})
                    return
                except FileExistsError as exc:
                    await json_reply(send, 409, {"ExceptionMessage": str(exc)})
                    return
                payload = management_urls(_origin(scope), rt.hub_name, self.system_key, created)
                headers = [
                    (b"content-type", b"application/json"),
                    (b"location", payload["statusQueryGetUri"].encode()),
                    (b"retry-after", b"10"),
                ]
                await reply(send, 202, headers, json.dumps(payload).encode())
                return
            if parts == ["instances"] and method == "GET":
                statuses = query.get("runtimeStatus")
                wanted = statuses.split(",") if statuses else None
                listed = await asyncio.to_thread(rt.list_status, wanted)
                await json_reply(send, 200, listed)
                return
            if parts[:1] != ["instances"] or len(parts) < 2:
                await json_reply(send, 404, {"Message": "Not Found"})
                return
            instance_id = parts[1]
            if not valid_instance_id(instance_id):
                await json_reply(send, 400, {"Message": INVALID_INSTANCE_ID})
                return
            if len(parts) == 2 and method == "GET":
                await self._status(scope, send, instance_id, query)
            elif len(parts) == 2 and method == "DELETE":
                deleted = await asyncio.to_thread(rt.purge, instance_id)
                await json_reply(send, 200 if deleted else 404, {"instancesDeleted": deleted})
            elif len(parts) == 4 and parts[2] == "raiseEvent" and method == "POST":
                try:
                    data = json.dumps(json.loads(body)) if body.strip() else None
                except ValueError:
                    await json_reply(
                        send, 400, {"Message": "Only application/json request content is supported"}
                    )
                    return
                code = await asyncio.to_thread(rt.raise_event, instance_id, parts[3], data)
                await reply(send, code, [(b"content-type", b"application/json")], b"")
            elif len(parts) == 3 and parts[2] == "terminate" and method == "POST":
                code = await asyncio.to_thread(rt.terminate, instance_id, query.get("reason"))
                await reply(send, code, [(b"content-type", b"application/json")], b"")
            elif len(parts) == 3 and parts[2] in ("rewind", "suspend", "resume", "restart"):
                await json_reply(
                    send, 501, {"Message": f"{parts[2]} is not supported by the local host"}
                )
            else:
                await json_reply(send, 404, {"Message": "Not Found"})
        except Exception:
            log.exception("durable management API failed")
            await json_reply(send, 500, {"Message": "Internal Server Error"})

    async def _status(
        self, scope: Scope, send: Send, instance_id: str, query: dict[str, str]
    ) -> None:
        def flag(name: str, default: bool) -> bool:
            value = query.get(name)
            return default if value is None else value.lower() == "true"

        found = await asyncio.to_thread(
            self.runtime.status,
            instance_id,
            show_history=flag("showHistory", False),
            show_history_output=flag("showHistoryOutput", False),
            show_input=flag("showInput", True),
        )
        if found is None:
            # A JSON string: the SDK's get_status turns it into a status with a message.
            message = json.dumps(f"No instance with ID '{instance_id}' found.")
            await reply(send, 404, [(b"content-type", b"application/json")], message.encode())
            return
        status = found["runtimeStatus"]
        headers = [(b"content-type", b"application/json")]
        if status in RUNNING:
            code = 202
            url = _origin(scope) + scope["path"]
            if scope.get("query_string"):
                url += "?" + scope["query_string"].decode("latin-1")
            headers += [(b"location", url.encode()), (b"retry-after", b"10")]
        elif status == "Failed" and flag("returnInternalServerErrorOnFailure", False):
            code = 500
        else:
            code = 200
        await reply(send, code, headers, json.dumps(found).encode())
