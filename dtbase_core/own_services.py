"""The app's own services, registered at start-up so that they appear on the services page
ready to schedule (docs/architecture.md, Start-up work): the weather ingress and the ARIMA
forecast, each with the JSON Schema of the body its route validates, called with the
service key (`use_service_key`) at the app's own address (DT_BACKEND_URL, or on Azure the
platform's host name).

Idempotent: a service of that name is inserted, or updated where its URL, method, key
flag or schema changed (a new deployment with a changed body model, or a new address),
and left alone otherwise; never duplicated. Several instances starting together settle on
one row (INSERT ... ON CONFLICT DO UPDATE). Off with DT_REGISTER_OWN_SERVICES=false.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dtbase_core.config import Settings
from dtbase_core.forecasting.config import ArimaConfig
from dtbase_core.ingress.weather import WeatherIngressIn
from dtbase_core.orm import Service
from dtbase_core.orm.base import HttpMethod

log = logging.getLogger(__name__)

DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class OwnService:
    name: str
    route: str  # under the API's base URL
    body: type[BaseModel]  # the route's body model: its JSON Schema is the service's

    def schema(self) -> dict[str, Any]:
        return {"$schema": DIALECT, **self.body.model_json_schema()}


OWN_SERVICES = (
    OwnService("weather-ingress", "ingress/weather", WeatherIngressIn),
    OwnService("arima-forecast", "forecast/arima", ArimaConfig),
)


def register(session: Session, settings: Settings) -> list[str]:
    """Insert or update each own service; the names of those written (empty when all were
    up to date)."""
    if not settings.services.register_own_services:
        return []
    base = settings.services.backend_url.rstrip("/")
    written = []
    for own in OWN_SERVICES:
        values = {
            "url": f"{base}/{own.route}",
            "http_method": HttpMethod.POST,
            "use_service_key": True,
            "parameters_schema": own.schema(),
        }
        statement = insert(Service).values(name=own.name, **values)
        changed = sa.or_(
            *(
                # JSON has no equality operator in PostgreSQL: compare as jsonb.
                sa.cast(getattr(Service, key), sa.dialects.postgresql.JSONB).is_distinct_from(
                    sa.cast(statement.excluded[key], sa.dialects.postgresql.JSONB)
                )
                if key == "parameters_schema"
                else getattr(Service, key).is_distinct_from(statement.excluded[key])
                for key in values
            )
        )
        row = session.scalar(
            statement.on_conflict_do_update(
                index_elements=[Service.name],
                set_={key: statement.excluded[key] for key in values},
                where=changed,
            ).returning(Service.id)
        )
        if row is not None:
            written.append(own.name)
    if written:
        log.info("own services registered or updated: %s", ", ".join(written))
    return written


def register_safely(session: Session, settings: Settings) -> None:
    """`register` in a savepoint: a failure is logged, never the request's or start-up's."""
    try:
        with session.begin_nested():
            register(session, settings)
    except Exception:
        log.exception("could not register the app's own services")
