"""What a send needs and what it gives: a channel's target and a send's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field

DELIVERY_HEADER = "X-DTBase-Delivery"
SIGNATURE_HEADER = "X-DTBase-Signature"


@dataclass(frozen=True)
class ChannelTarget:
    """A channel as a send needs it (secret included: never logged or listed)."""

    name: str
    kind: str
    url: str | None
    recipients: list[str] | None
    secret: str | None = field(repr=False)
    template: str | None


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0
    # No retry can help (a refused address, a template that fails, email not configured):
    # the delivery is dead at once.
    permanent: bool = False
    # The receiver's Retry-After (429, 503), in seconds: the next attempt waits at least
    # that long (within the backoff's cap).
    retry_after: float | None = None
