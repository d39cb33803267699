"""Email through Azure Communication Services Email, with its SDK (`EmailClient`).

A send is the service's long-running operation: `POST /emails:send` answers 202 with an
`Operation-Location`, polled until the message is `Succeeded` or `Failed`. The client
authenticates with the resource's access key (HMAC-SHA256 request signatures; the key
itself never travels) or, without a key, with the app's managed identity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError

from dtbase_core.config import NotifySettings
from dtbase_core.notifications.delivery import DELIVERY_HEADER, Outcome
from dtbase_core.notifications.templates import EmailContent

# Seconds between status polls when the service names no Retry-After.
POLL_SECONDS = 1.0
NOT_CONFIGURED = (
    "email is not configured: set DT_ACS_ENDPOINT and DT_ACS_SENDER_ADDRESS (and "
    "DT_ACS_ACCESS_KEY, or give the app a managed identity with access to the resource)"
)


def _credential(settings: NotifySettings) -> Any:
    if settings.acs_access_key:
        return AzureKeyCredential(settings.acs_access_key)
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=settings.acs_managed_identity_client_id)


def client(settings: NotifySettings, transport: Any = None) -> Any:
    """An EmailClient for the configured resource; `transport` stands in in tests."""
    from azure.communication.email import EmailClient

    assert settings.acs_endpoint
    options: dict[str, Any] = {
        "connection_timeout": settings.timeout_seconds,
        "read_timeout": settings.timeout_seconds,
        "retry_total": 0,  # the outbox retries, with its own backoff
    }
    if transport is not None:
        options["transport"] = transport
    return EmailClient(settings.acs_endpoint, _credential(settings), **options)


def message(
    sender: str, recipients: Sequence[str], content: EmailContent, delivery_id: int
) -> dict[str, Any]:
    """The send request's body, as the REST API and the SDK name its fields."""
    return {
        "senderAddress": sender,
        "recipients": {"to": [{"address": address} for address in recipients]},
        "content": {"subject": content.subject, "plainText": content.text, "html": content.html},
        "headers": {DELIVERY_HEADER: str(delivery_id)},
    }


def send(
    settings: NotifySettings,
    *,
    recipients: Sequence[str],
    content: EmailContent,
    delivery_id: int,
    transport: Any = None,
) -> Outcome:
    """Submit the email and wait (up to DT_NOTIFY_TIMEOUT_SECONDS) for its final status.

    The status code recorded is the submission's (202). A message still running at the
    bound counts as delivered: the service took it and retries on its own."""
    if not (settings.acs_endpoint and settings.acs_sender_address):
        return Outcome(False, error=NOT_CONFIGURED, permanent=True)
    body = message(settings.acs_sender_address, recipients, content, delivery_id)
    try:
        with client(settings, transport) as email_client:
            poller = email_client.begin_send(body, polling_interval=POLL_SECONDS)
            result = poller.result(timeout=settings.timeout_seconds)
            done = poller.done()
    except HttpResponseError as exc:
        reason = exc.error.message if exc.error is not None else exc.reason
        if exc.status_code is not None and exc.status_code < 300:  # the operation Failed
            return Outcome(False, 202, f"Communication Services did not send it: {reason}")
        return Outcome(
            False, exc.status_code, f"Communication Services answered {exc.status_code}: {reason}"
        )
    except AzureError as exc:
        return Outcome(False, error=f"could not reach Communication Services: {exc.message}")
    if not done:  # still running at the bound
        return Outcome(True, 202)
    status = str((result or {}).get("status", ""))
    if status.lower() == "succeeded":
        return Outcome(True, 202)
    error = (result or {}).get("error") or {}
    return Outcome(
        False,
        202,
        f"Communication Services did not send it ({status}): {error.get('message', 'no reason')}",
    )
