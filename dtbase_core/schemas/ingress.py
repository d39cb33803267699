"""Replies of the weather ingress (`POST /ingress/weather`); its body is the core's
`WeatherIngressIn` (dtbase_core/ingress/weather.py), which the timer uses too."""

from __future__ import annotations

from pydantic import BaseModel


class SensorIngested(BaseModel):
    unique_identifier: str
    timestamps: int
    measures: int
    first: str | None
    last: str | None


class WeatherIngressOut(BaseModel):
    detail: str
    dt_from: str
    dt_to: str
    latitude: float
    longitude: float
    openweathermap_calls: int
    inserted: int
    duplicates: int
    sensors: list[SensorIngested]
