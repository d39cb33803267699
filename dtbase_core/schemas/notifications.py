"""Bodies and replies of /notification (docs/api.md, Notifications)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from dtbase_core.schemas.common import Body, Name

# Checked further by the core: http or https, with a host.
Url = Annotated[str, Field(min_length=1, max_length=2048)]


def _address(value: str) -> str:
    # The shape only (one @, a dot in the domain, no spaces): Communication Services is the
    # judge of what it can deliver to.
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain.strip(".") or any(c.isspace() for c in value):
        raise ValueError("must be an email address such as ops@example.org")
    return value


Email = Annotated[str, Field(min_length=3, max_length=254), AfterValidator(_address)]


class ChannelIn(Body):
    name: Name
    kind: Literal["webhook", "email"]
    # webhook: where to POST; email: not used.
    url: Url | None = None
    # email: who gets it; webhook: not used.
    recipients: list[Email] | None = Field(None, max_length=50)
    # Write-only: the webhook's HMAC-SHA256 key (X-DTBase-Signature). Never listed.
    secret: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    # A Jinja2 template (sandboxed): the webhook's JSON body, or the email's text.
    template: Annotated[str, Field(min_length=1, max_length=20_000)] | None = None


class ChannelOut(BaseModel):
    name: str
    kind: str
    url: str | None
    recipients: list[str] | None
    has_secret: bool
    template: str | None
    time_created: datetime


class ChannelNameIn(Body):
    name: Name


class TestChannelOut(BaseModel):
    """The outcome of the sample sent by test-channel (also listed as a delivery)."""

    delivery_id: int
    delivered: bool
    # The receiver's HTTP status (202 from Communication Services for an email), if any.
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryFilterIn(Body):
    channel: Name | None = None
    status: Literal["pending", "delivered", "dead"] | None = None
    # The newest first; at most this many.
    limit: int = Field(200, ge=1, le=1000)


class AttemptOut(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: int
    channel: str
    status: str
    transition: str | None
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    event: dict[str, Any]
    history: list[AttemptOut]
