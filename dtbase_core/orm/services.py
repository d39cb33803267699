"""Services, parameter sets and the run log, as DTBase's service tables (docs/api.md,
Service runs)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import HTTP_METHOD_ENUM, Base, HttpMethod, Timestamped, UtcDateTime


class Service(Timestamped, Base):
    __tablename__ = "service"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text, unique=True)
    url: Mapped[str] = mapped_column(sa.Text)
    http_method: Mapped[HttpMethod] = mapped_column(HTTP_METHOD_ENUM)
    # Send the deployment's service key (DT_SERVICE_API_KEY) in `x-functions-key`.
    use_service_key: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # A JSON Schema that parameter sets and run parameters must satisfy; SQL NULL: none.
    parameters_schema: Mapped[Any] = mapped_column(sa.JSON(none_as_null=True), nullable=True)


class ServiceParameterSet(Timestamped, Base):
    __tablename__ = "service_parameter_set"
    __table_args__ = (sa.UniqueConstraint("service_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("service.id", ondelete="CASCADE"))
    parameters: Mapped[Any] = mapped_column(sa.JSON)


class RunStatus(enum.StrEnum):
    """A run-log row's state: `running` until the run ends; `completed` when the service
    gave its final reply (whatever its status code), `failed` when none came (refused,
    unreachable, timed out; response_json is null)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ServiceRunLog(Timestamped, Base):
    __tablename__ = "service_run_log"
    __table_args__ = (
        sa.CheckConstraint("status in ('running', 'completed', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(
        sa.ForeignKey("service.id", ondelete="CASCADE"), index=True
    )
    # SET NULL, not CASCADE: deleting a parameter set keeps its history.
    parameter_set_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service_parameter_set.id", ondelete="SET NULL"), index=True
    )
    # JSON null is a value here ("no parameters"), distinct from SQL NULL.
    parameters: Mapped[Any] = mapped_column(sa.JSON(none_as_null=False))
    response_status_code: Mapped[int] = mapped_column()
    response_json: Mapped[Any] = mapped_column(sa.JSON(none_as_null=True), nullable=True)
    # When the run started.
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(sa.String(16), server_default=RunStatus.COMPLETED.value)
    # run-service's detail: "Service called successfully.", or why the run failed.
    detail: Mapped[str | None] = mapped_column(sa.Text)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The schedule that started the run, if one did (SET NULL: its runs outlive it).
    schedule_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service_schedule.id", ondelete="SET NULL"), index=True
    )


class ServiceSchedule(Timestamped, Base):
    """Run a service with a parameter set (or none) on an NCRONTAB expression (seconds
    first, UTC) while enabled (dtbase_core/schedules.py)."""

    __tablename__ = "service_schedule"
    __table_args__ = (sa.UniqueConstraint("service_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("service.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.Text)
    # RESTRICT: a set a schedule runs cannot go from under it (delete-parameter-set: 409).
    parameter_set_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service_parameter_set.id", ondelete="RESTRICT"), index=True
    )
    cron: Mapped[str] = mapped_column(sa.Text)
    enabled: Mapped[bool] = mapped_column()
    # The latest occurrence the dispatcher has considered: occurrences up to it are done
    # (run, or skipped as missed); set to "now" when the schedule is created, enabled or
    # given a new expression, so that it never fires for a time before that.
    watermark: Mapped[datetime] = mapped_column(UtcDateTime)


class ServiceScheduleOccurrence(Base):
    """One row per occurrence started: the insert that succeeds (ON CONFLICT DO NOTHING on
    the primary key) is the one dispatcher, of however many, that starts it."""

    __tablename__ = "service_schedule_occurrence"

    schedule_id: Mapped[int] = mapped_column(
        sa.ForeignKey("service_schedule.id", ondelete="CASCADE"), primary_key=True
    )
    occurrence: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service_run_log.id", ondelete="SET NULL"), index=True
    )
    time_created: Mapped[datetime] = mapped_column(
        UtcDateTime, server_default=sa.func.now(), nullable=False
    )
