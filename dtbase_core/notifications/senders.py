"""Sending one delivery: a signed webhook POST, or an email through Azure Communication
Services. Each send answers an `Outcome`; none raises for a failure of the other side.

Webhook URLs come from users, so the POST goes through the outbound address policy
(dtbase_core/outbound.py): a refused address fails the delivery, nothing is sent. The
Communication Services endpoint is the deployment's own setting (as OpenWeatherMap's)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import httpx

from dtbase_core import outbound, redact
from dtbase_core.config import NotifySettings, Settings
from dtbase_core.notifications import email
from dtbase_core.notifications.delivery import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    ChannelTarget,
    Outcome,
)
from dtbase_core.notifications.templates import TemplateFailed, email_content, webhook_body
from dtbase_core.services import retry_after_seconds

USER_AGENT = "DTBase-Notifications/1"
# How much of a failed reply's body is kept in last_error.
REPLY_EXCERPT = 200


def signature(secret: str, body: bytes) -> str:
    """X-DTBase-Signature's value: `sha256=` and the hex HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def context_for(delivery_id: int, event: Mapping[str, Any]) -> dict[str, Any]:
    """The webhook body's fields (and every template's context), `delivery_id` first."""
    return {
        "delivery_id": delivery_id,
        "alert": event.get("alert"),
        "rule": event.get("rule"),
        "transition": event.get("transition"),
        "at": event.get("at"),
        **{k: v for k, v in event.items() if k not in ("alert", "rule", "transition", "at")},
    }


class Sender:
    """Sends deliveries with the deployment's settings; `transport` (httpx) and
    `email_transport` (azure-core) stand in for the network in tests."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: outbound.OutboundPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        email_transport: Any = None,
    ) -> None:
        self.notify: NotifySettings = settings.notify
        self.policy = policy or outbound.OutboundPolicy.allowing(settings.service_allowed_hosts)
        self.transport = transport
        self.email_transport = email_transport

    async def send(
        self, channel: ChannelTarget | None, delivery_id: int, event: Mapping[str, Any]
    ) -> Outcome:
        started = time.monotonic()
        if channel is None:
            outcome = Outcome(False, error="the channel was deleted", permanent=True)
        elif channel.kind == "webhook":
            outcome = await self._webhook(channel, delivery_id, event)
        else:
            outcome = await asyncio.to_thread(self._email, channel, delivery_id, event)
        elapsed = round((time.monotonic() - started) * 1000)
        return Outcome(
            outcome.delivered,
            outcome.status_code,
            redact.mask_text(outcome.error) if outcome.error else None,
            elapsed,
            outcome.permanent,
            outcome.retry_after,
        )

    async def _webhook(
        self, channel: ChannelTarget, delivery_id: int, event: Mapping[str, Any]
    ) -> Outcome:
        if not channel.url:
            return Outcome(False, error="the channel has no url", permanent=True)
        try:
            body = webhook_body(channel.template, context_for(delivery_id, event))
        except TemplateFailed as exc:
            return Outcome(False, error=str(exc), permanent=True)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            DELIVERY_HEADER: str(delivery_id),
        }
        if channel.secret:
            headers[SIGNATURE_HEADER] = signature(channel.secret, body)
        timeout = self.notify.timeout_seconds
        client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            transport=self.transport,
            verify=await outbound.tls_context(),
        )
        url = httpx.URL(channel.url)
        # A webhook URL's path may be its credential (Slack, Teams): log lines and errors
        # show only its origin.
        with redact.secret_url(str(url), channel.url):
            return await self._post(client, url, headers, body, timeout)

    async def _post(
        self,
        client: httpx.AsyncClient,
        url: httpx.URL,
        headers: dict[str, str],
        body: bytes,
        timeout: float,
    ) -> Outcome:
        try:
            async with client:
                # One overall bound: a receiver trickling its reply cannot hold the drain.
                response = await asyncio.wait_for(
                    outbound.send(
                        client,
                        "POST",
                        url,
                        policy=self.policy,
                        headers=headers,
                        content=body,
                        max_redirects=0,
                    ),
                    timeout,
                )
        except outbound.OutboundRefused as exc:
            return Outcome(False, error=redact.mask_text(exc.detail), permanent=True)
        except httpx.TooManyRedirects:
            return Outcome(False, error="the receiver redirected: webhooks are not redirected")
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(False, error=f"no reply within {timeout:g} s")
        except (httpx.HTTPError, OSError) as exc:
            reason = redact.mask_text(str(exc)) or type(exc).__name__
            return Outcome(False, error=f"could not reach the receiver: {reason}")
        if 200 <= response.status_code < 300:
            return Outcome(True, response.status_code)
        excerpt = " ".join(response.text[:REPLY_EXCERPT].split())
        return Outcome(
            False,
            response.status_code,
            f"the receiver answered {response.status_code}" + (f": {excerpt}" if excerpt else ""),
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )

    def _email(self, channel: ChannelTarget, delivery_id: int, event: Mapping[str, Any]) -> Outcome:
        if not channel.recipients:
            return Outcome(False, error="the channel has no recipients", permanent=True)
        try:
            content = email_content(channel.template, context_for(delivery_id, event))
        except TemplateFailed as exc:
            return Outcome(False, error=str(exc), permanent=True)
        return email.send(
            self.notify,
            recipients=channel.recipients,
            content=content,
            delivery_id=delivery_id,
            transport=self.email_transport,
        )
