"""Alerts: rules, the state each rule keeps per watched series, the alerts they raise,
every transition of those alerts, and the evaluation ticks (dtbase_core/alerts/).

An alert outlives its rule and its sensor (their ids become null; the names stay on the
alert), so the history of a deleted rule can still be read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import Base, Timestamped, UtcDateTime

RULE_KINDS = ("threshold", "no_data", "rate_of_change", "forecast_deviation")
SEVERITIES = ("info", "warning", "critical")
# What a user sees. `acknowledged` is a firing alert someone has taken on.
ALERT_STATES = ("pending", "firing", "acknowledged", "resolved")
OPEN_STATES = ("pending", "firing", "acknowledged")
# What the evaluator keeps per series: the rule's condition is not met, met for less than
# `for_seconds`, or met.
PHASES = ("ok", "pending", "firing")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} in ({', '.join(repr(v) for v in values)})"


class AlertRule(Timestamped, Base):
    __tablename__ = "alert_rule"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", RULE_KINDS), name="kind"),
        sa.CheckConstraint(_in("severity", SEVERITIES), name="severity"),
        # One scope: a sensor, or every sensor of a type.
        sa.CheckConstraint("(unique_identifier is null) <> (type_name is null)", name="scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    measure_name: Mapped[str] = mapped_column(sa.String(100))
    units: Mapped[str | None] = mapped_column(sa.String(100))
    # Names, not ids: a type-scoped rule covers sensors added later, and a rule may name
    # a sensor before it exists (it watches nothing until then).
    unique_identifier: Mapped[str | None] = mapped_column(sa.String(100))
    type_name: Mapped[str | None] = mapped_column(sa.String(100))
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    severity: Mapped[str] = mapped_column(sa.String(16))
    channels: Mapped[list[str]] = mapped_column(sa.JSON)
    enabled: Mapped[bool] = mapped_column(sa.Boolean)
    silenced_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(sa.String(320))


class AlertSeries(Base):
    """The evaluator's memory of one (rule, sensor): how far it has read (the watermark),
    the last reading, and where the rule's condition stands."""

    __tablename__ = "alert_series"
    __table_args__ = (sa.CheckConstraint(_in("phase", PHASES), name="phase"),)

    rule_id: Mapped[int] = mapped_column(
        sa.ForeignKey("alert_rule.id", ondelete="CASCADE"), primary_key=True
    )
    sensor_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    measure_id: Mapped[int] = mapped_column(sa.Integer)
    # Readings up to this instant have been evaluated.
    watermark: Mapped[datetime] = mapped_column(UtcDateTime)
    last_timestamp: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_value: Mapped[float | None] = mapped_column(sa.Double)
    phase: Mapped[str] = mapped_column(sa.String(8))
    # When the condition began to hold (pending or firing); consecutive points outside
    # a forecast's bounds.
    since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    streak: Mapped[int] = mapped_column(sa.Integer)
    watched_since: Mapped[datetime] = mapped_column(UtcDateTime)
    alert_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("alert.id", ondelete="SET NULL"), index=True
    )


class Alert(Base):
    __tablename__ = "alert"
    __table_args__ = (
        sa.CheckConstraint(_in("state", ALERT_STATES), name="state"),
        # At most one open alert per (rule, sensor), whatever evaluates concurrently.
        sa.Index(
            "uq_alert_open_series",
            "rule_id",
            "sensor_id",
            unique=True,
            postgresql_where=sa.text(_in("state", OPEN_STATES)),
        ),
        sa.Index("ix_alert_state_started_at", "state", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("alert_rule.id", ondelete="SET NULL"), index=True
    )
    rule_name: Mapped[str] = mapped_column(sa.String(100))
    sensor_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sensor.id", ondelete="SET NULL"), index=True
    )
    unique_identifier: Mapped[str] = mapped_column(sa.String(100))
    measure_name: Mapped[str] = mapped_column(sa.String(100))
    severity: Mapped[str] = mapped_column(sa.String(16))
    state: Mapped[str] = mapped_column(sa.String(16))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    fired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(320))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    comment: Mapped[str | None] = mapped_column(sa.Text)
    last_value: Mapped[float | None] = mapped_column(sa.Double)
    message: Mapped[str] = mapped_column(sa.Text)


class AlertTransition(Base):
    """Every change of an alert's state, with whether it was notified (not while the
    rule is silenced)."""

    __tablename__ = "alert_transition"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alert.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(sa.String(16))
    to_state: Mapped[str] = mapped_column(sa.String(16))
    # When it happened in the data (a reading's time), and when it was recorded.
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    value: Mapped[float | None] = mapped_column(sa.Double)
    actor: Mapped[str | None] = mapped_column(sa.String(320))
    comment: Mapped[str | None] = mapped_column(sa.Text)
    notified: Mapped[bool] = mapped_column(sa.Boolean)


class AlertTick(Base):
    """One row per timer occurrence: the host that inserts it evaluates that tick."""

    __tablename__ = "alert_tick"

    tick: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    evaluated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    transitions: Mapped[int] = mapped_column(sa.Integer)
