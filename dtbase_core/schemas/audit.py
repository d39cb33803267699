"""Bodies of /audit (docs/api.md, Audit log)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from dtbase_core.audit import DEFAULT_LIMIT, MAX_LIMIT, ActorKind, Outcome
from dtbase_core.schemas.common import Body, UtcDatetime

BIGINT_MAX = 2**63 - 1
# Text to match exactly: no NUL, which PostgreSQL's text cannot hold.
Match = Annotated[str, Field(min_length=1, max_length=320, pattern=r"^[^\x00]*$")]


class AuditFilterIn(Body):
    # A user's email, an API key's name, or "built-in services".
    actor: Match | None = None
    # A route ("sensor/insert-sensor") or an area ("sensor").
    action: Match | None = None
    outcome: Outcome | None = None
    dt_from: UtcDatetime | None = None
    dt_to: UtcDatetime | None = None
    # Paging, newest first: the next page is `before_id` the last event's id.
    before_id: Annotated[int, Field(ge=1, le=BIGINT_MAX)] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor_kind: ActorKind
    actor: str
    method: str
    route: str
    target: str | None
    status: int
    outcome: Outcome
