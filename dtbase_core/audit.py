"""The audit log (docs/api.md, Audit log): one row per write through the API, saying who
(a user, an API key or the built-in services), which route, what it touched, when, and the
reply's status.

The HTTP layer decides which routes are writes and when a row is written
(function_app/http.py); this module holds the table's two queries and how a request's
target is described. A target is built from identifier fields only (`TARGET_FIELDS`),
never from a whole body: passwords, secrets, keys, tokens and URLs never reach the table.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core.apikeys import SERVICE_KEY_NAME
from dtbase_core.orm import AuditEvent

# The fields of a body (or a route's path) that name what a request writes, in the order
# a target shows them. Only these are ever stored, and only scalar values of them.
TARGET_FIELDS = (
    "unique_identifier",
    "type_name",
    "name",
    "email",
    "client_id",
    "service_name",
    "parameter_set_name",
    "model_name",
    "scenario_description",
    "measure_name",
    "schema_name",
    "rule_name",
    "channel",
    "asset",
    "parent",
    "run_id",
    "instance_id",
    "id",
)
MAX_FIELD = 100  # characters of one value in a target
MAX_TARGET = 300  # characters of a whole target
MAX_NAMED_SENSORS = 10  # sensors a target names; the rest are counted
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class ActorKind(enum.StrEnum):
    USER = "user"  # a person or Entra ID application signed in with a token
    API_KEY = "api_key"
    SERVICE = "service"  # the built-in services' key (DT_SERVICE_API_KEY)


class Outcome(enum.StrEnum):
    SUCCESS = "success"  # a 2xx or 3xx reply
    FAILURE = "failure"  # any other


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    name: str

    @classmethod
    def user(cls, email: str) -> Actor:
        return cls(ActorKind.USER, email)

    @classmethod
    def key(cls, name: str) -> Actor:
        kind = ActorKind.SERVICE if name == SERVICE_KEY_NAME else ActorKind.API_KEY
        return cls(kind, name)


def _short(value: str, limit: int) -> str:
    # PostgreSQL's text holds no NUL, which a refused body may carry.
    value = value.replace("\x00", "\ufffd")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def describe_target(fields: Mapping[str, Any], readings: int | None = None) -> str | None:
    """`name=value` for each of `TARGET_FIELDS` present in `fields` with a scalar value,
    and the number of readings a request carries; None when nothing names a target."""
    parts = []
    for key in TARGET_FIELDS:
        value = fields.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            parts.append(f"{key}={_short(str(value), MAX_FIELD)}")
    if readings is not None:
        parts.append(f"{readings} reading{'' if readings == 1 else 's'}")
    return _short(", ".join(parts), MAX_TARGET) if parts else None


def describe_sensors(unique_identifiers: Iterable[str], readings: int) -> str:
    """The target of a write to many sensors: the first few named, the rest counted."""
    sensors = list(dict.fromkeys(unique_identifiers))
    named = ", ".join(_short(uid, MAX_FIELD) for uid in sensors[:MAX_NAMED_SENSORS])
    more = len(sensors) - MAX_NAMED_SENSORS
    listed = named + (f" and {more} more" if more > 0 else "")
    return _short(
        f"{len(sensors)} sensor{'' if len(sensors) == 1 else 's'} ({listed}), "
        f"{readings} reading{'' if readings == 1 else 's'}",
        MAX_TARGET,
    )


# On every write: a Core INSERT of the table, built once. An ORM-enabled `insert(AuditEvent)
# .values(...)` costs several times more per call (1.3 against 0.25 ms, measured).
_INSERT = sa.insert(AuditEvent.metadata.tables[AuditEvent.__tablename__])


def record_event(
    session: Session,
    *,
    at: datetime,
    actor: Actor,
    method: str,
    route: str,
    target: str | None,
    status: int,
) -> None:
    """One INSERT, in `session`'s transaction: it commits, or rolls back, with the write."""
    session.execute(
        _INSERT,
        {
            "at": at,
            "actor_kind": actor.kind.value,
            "actor": actor.name,
            "method": method,
            "route": route,
            "target": target,
            "status": status,
        },
    )


def list_events(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    outcome: Outcome | None = None,
    dt_from: datetime | None = None,
    dt_to: datetime | None = None,
    before_id: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[dict[str, Any]]:
    """Events newest first (by id), at most `limit`; the next page starts `before_id` the
    last one's id. `action` is a route ("sensor/insert-sensor") or an area ("sensor");
    `dt_from` is inclusive, `dt_to` exclusive."""
    query = sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(min(limit, MAX_LIMIT))
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if action is not None:
        area = action.strip("/")
        query = query.where(
            AuditEvent.route == area
            if "/" in area
            else AuditEvent.route.startswith(area + "/", autoescape=True)
        )
    if outcome is Outcome.SUCCESS:
        query = query.where(AuditEvent.status < 400)
    elif outcome is Outcome.FAILURE:
        query = query.where(AuditEvent.status >= 400)
    if dt_from is not None:
        query = query.where(AuditEvent.at >= dt_from)
    if dt_to is not None:
        query = query.where(AuditEvent.at < dt_to)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return [
        {
            "id": row.id,
            "at": row.at,
            "actor_kind": row.actor_kind,
            "actor": row.actor,
            "method": row.method,
            "route": row.route,
            "target": row.target,
            "status": row.status,
            "outcome": Outcome.SUCCESS if row.status < 400 else Outcome.FAILURE,
        }
        for row in session.scalars(query)
    ]
