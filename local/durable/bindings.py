"""The `durableClient` binding the local host hands to functions, and the management URLs
in it, formed as the Durable extension forms them.

Every URL carries the host's Durable system key, as on Azure: the management URLs as
`code=` (what a starter returns to its caller), the SDK's own calls (`rpcBaseUrl`) as the
password of the URL's user information, which aiohttp sends as HTTP basic authentication
(the SDK adds no header or query of its own to those calls).
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_HUB = "DTBaseHub"
WEBHOOK_PREFIX = "/runtime/webhooks/durabletask/"
RPC_USER = "durabletask"


def management_urls(
    origin: str, hub_name: str, system_key: str, instance_id: str = "INSTANCEID"
) -> dict[str, str]:
    """The URLs `create_check_status_response` hands out for one instance."""
    base = f"{origin.rstrip('/')}{WEBHOOK_PREFIX}instances/{instance_id}"
    query = f"taskHub={hub_name}&connection=Storage&code={system_key}"
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{base}?{query}",
        "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{base}/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{base}/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{base}?{query}",
        "restartPostUri": f"{base}/restart?{query}",
        "suspendPostUri": f"{base}/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{base}/resume?reason={{text}}&{query}",
    }


def client_binding(origin: str, hub_name: str = DEFAULT_HUB, *, system_key: str) -> str:
    """The `durableClient` binding's JSON for a function on the host at `origin`."""
    origin = origin.rstrip("/")
    orchestrators = f"{origin}{WEBHOOK_PREFIX}orchestrators/{{functionName}}"
    scheme, _, authority = origin.partition("://")
    return json.dumps(
        {
            "taskHubName": hub_name,
            "creationUrls": {
                "createNewInstancePostUri": f"{orchestrators}[/{{instanceId}}]?code={system_key}",
                "createAndWaitOnNewInstancePostUri": (
                    f"{orchestrators}[/{{instanceId}}]?timeout={{timeoutInSeconds}}"
                    f"&pollingInterval={{intervalInSeconds}}&code={system_key}"
                ),
            },
            "managementUrls": management_urls(origin, hub_name, system_key),
            "rpcBaseUrl": f"{scheme}://{RPC_USER}:{system_key}@{authority}{WEBHOOK_PREFIX}",
        }
    )


def durable_client_names(fn: Any) -> list[str]:
    """The names of a function's `durableClient` bindings."""
    return [b.name for b in fn.get_bindings() if b.type == "durableClient"]


def loopback_origin(scope: dict[str, Any]) -> str:
    """The host as the host itself reaches it: the SDK's client calls back here."""
    host, port = scope.get("server") or ("127.0.0.1", 7071)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def bindings_for(
    fn: Any, scope: dict[str, Any], hub_name: str = DEFAULT_HUB, *, system_key: str
) -> dict[str, str]:
    """`FunctionHost(extra_bindings=...)`: the durable client binding, where declared."""
    names = durable_client_names(fn)
    if not names:
        return {}
    binding = client_binding(loopback_origin(scope), hub_name, system_key=system_key)
    return dict.fromkeys(names, binding)
