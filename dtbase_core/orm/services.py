"""Services, parameter sets and the run log, as DTBase's service tables (docs/api.md,
Service runs)."""

from __future__ import annotations

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


class ServiceParameterSet(Timestamped, Base):
    __tablename__ = "service_parameter_set"
    __table_args__ = (sa.UniqueConstraint("service_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("service.id", ondelete="CASCADE"))
    parameters: Mapped[Any] = mapped_column(sa.JSON)


class ServiceRunLog(Timestamped, Base):
    __tablename__ = "service_run_log"

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
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime)
