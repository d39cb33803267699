"""The ARIMA forecast as jobs on a Backend (docs/api.md, Forecasts).

- `set_up(backend, config)`: the model "Arima", its scenario "Business as usual" and, per
  configured measure, the model measures "Mean <m>", "Upper Bound <m>" and "Lower Bound
  <m>" (each may exist already).
- `forecast_series(backend, config, sensor, measure, units, ...)`: one (sensor, measure):
  read the training window, clean, prepare, fit, forecast, and store one model run with
  the three products, the sensor and sensor measure it forecasts, and the
  cross-validation metrics. Nothing is shared between series (docs/api.md,
  Weather ingress and forecasts).
- `ArimaService`: all series one after the other, as a service (`BaseModel`) that can run
  anywhere with a `DTBaseClient`. The function app runs the same jobs as a Durable
  orchestration instead (function_app/forecasting.py), one activity per series.

A series that cannot be forecast raises `ForecastError` naming the series and the cause.
Storing a run is idempotent for a given `time_created`: a job re-run after a crash finds
the run it stored before instead of failing or storing it twice.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from dtbase_core.errors import AlreadyExists
from dtbase_core.forecasting.config import MODEL_NAME, SCENARIO, ArimaConfig, product_names
from dtbase_core.forecasting.errors import ForecastError
from dtbase_core.service_base import Backend, BaseModel
from dtbase_core.timeutil import as_utc, iso_z, utcnow

log = logging.getLogger(__name__)


def _units_text(units: str | None) -> str:
    return "null" if units is None else f"'{units}'"


def series_label(sensor: str, measure: str, units: str | None) -> str:
    return f"sensor '{sensor}', measure '{measure}' ({_units_text(units)})"


def set_up(backend: Backend, config: ArimaConfig) -> None:
    backend.ensure_model(MODEL_NAME)
    backend.ensure_model_scenario(MODEL_NAME, SCENARIO)
    for name, units in dict.fromkeys(config.sensors.include_measures):
        for product in product_names(name):
            backend.ensure_model_measure(product, units or "", "float")


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN or infinity: such a metric is stored as null."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in metrics.items()
    }


def forecast_series(
    backends: Callable[[], AbstractContextManager[Backend]],
    config: ArimaConfig,
    sensor: str,
    measure: str,
    units: str | None,
    *,
    time_created: datetime,
) -> dict[str, Any]:
    """Forecast one series and store its run; a summary with the run id, the metrics and
    where the time went. `config.data.predict_from_datetime` must be set (the caller's
    "now").

    `backends()` gives a backend for one step: the training data is read with one, the
    run stored with another, and the model is fitted in between without holding either
    (with the core, each is its own short transaction)."""
    from dtbase_core.forecasting import arima, data

    started = time.time()
    label = series_label(sensor, measure, units)
    predict_from = config.data.predict_from_datetime
    assert predict_from is not None, "resolve predict_from_datetime first"
    dt_from, dt_to = data.training_window(predict_from, config.data.num_days_training)

    with backends() as backend:
        found_units = backend.measure_units(sensor, measure)
        if not found_units:
            raise ForecastError(f"{label}: the sensor does not exist or has no such measure")
        if units not in found_units:
            raise ForecastError(
                f"{label}: the sensor's '{measure}' is in {_units_text(found_units[0])}, not "
                f"{_units_text(units)}"
            )
        readings = backend.sensor_readings(sensor, measure, dt_from, dt_to)
    read_seconds = time.time() - started
    if not readings:
        raise ForecastError(
            f"{label}: no training data between {iso_z(dt_from)} and {iso_z(dt_to)}"
        )

    raw = data.to_series(readings, label)
    cleaned = data.clean(
        raw, mins_from_the_hour=config.data.mins_from_the_hour, step=config.data.step
    )
    prepared, imputed = data.prepare(
        cleaned,
        cycle_start=config.others.cycle_start,
        days_interval=config.others.days_interval,
        weekly_seasonality=config.others.weekly_seasonality,
    )
    result = arima.pipeline(prepared, config.arima, config.data.step)
    metrics = _finite(
        {**result.metrics, "training_points": len(prepared), "imputed_points": imputed}
    )

    mean_name, upper_name, lower_name = product_names(measure)
    timestamps = [ts.to_pydatetime() for ts in result.mean.index]
    products = [
        {"measure_name": name, "values": [float(v) for v in values], "timestamps": timestamps}
        for name, values in (
            (mean_name, result.mean),
            (upper_name, result.upper),
            (lower_name, result.lower),
        )
    ]
    store_started = time.time()
    with backends() as backend:
        run_id = store_run(
            backend,
            products,
            time_created=time_created,
            sensor=sensor,
            sensor_measure={"name": measure, "units": units},
            metrics=metrics,
        )
    finished = time.time()
    return {
        "sensor": sensor,
        "measure": measure,
        "units": units,
        "run_id": run_id,
        "points": len(timestamps),
        "first": iso_z(timestamps[0]),
        "last": iso_z(timestamps[-1]),
        "metrics": metrics,
        "timings": {
            "started": started,
            "finished": finished,
            "read_seconds": round(read_seconds, 4),
            "fit_seconds": round(result.fit_seconds, 4),
            "store_seconds": round(finished - store_started, 4),
            "total_seconds": round(finished - started, 4),
        },
    }


def store_run(
    backend: Backend,
    products: list[dict[str, Any]],
    *,
    time_created: datetime,
    sensor: str,
    sensor_measure: dict[str, Any],
    metrics: dict[str, Any],
) -> int:
    """Insert the run; if a run of Arima/Business as usual created at exactly this
    instant exists already (this job ran before), its id."""
    try:
        return backend.insert_model_run(
            model_name=MODEL_NAME,
            scenario_description=SCENARIO,
            measures_and_values=products,
            time_created=time_created,
            sensor_unique_id=sensor,
            sensor_measure=sensor_measure,
            metrics=metrics,
        )
    except AlreadyExists:
        log.info("run at %s exists already (a repeated job): reusing it", iso_z(time_created))
        return backend.find_model_run(MODEL_NAME, SCENARIO, time_created)


def creation_instant(start: datetime, index: int) -> datetime:
    """Each series of one forecast gets its own creation instant (runs of a model and
    scenario are unique by it): the start plus the series' index in microseconds."""
    return as_utc(start) + timedelta(microseconds=index)


def summarise(results: list[dict[str, Any]], predict_from: datetime) -> dict[str, Any]:
    """The forecast's output: the run ids created and, per series, its metrics or error."""
    return {
        "model": MODEL_NAME,
        "scenario": SCENARIO,
        "predict_from": iso_z(predict_from),
        "run_ids": [r["run_id"] for r in results if r.get("run_id") is not None],
        "failed": sum(1 for r in results if "error" in r),
        "series": results,
    }


def failure_message(summary: dict[str, Any]) -> str:
    errors = [r for r in summary["series"] if "error" in r]
    parts = "; ".join(r["error"] for r in errors)
    return (
        f"{len(errors)} of {len(summary['series'])} series could not be forecast: {parts}. "
        f"Runs created: {summary['run_ids']}"
    )


class ForecastFailed(Exception):
    """Some series could not be forecast; the others were stored. `summary` has both."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__(failure_message(summary))
        self.summary = summary


def run_guarded(job: Any, sensor: str, measure: str, units: str | None) -> dict[str, Any]:
    """Run a series job; a ForecastError becomes that series' error entry."""
    try:
        return dict(job())
    except ForecastError as exc:
        log.warning("forecast failed: %s", exc)
        return {"sensor": sensor, "measure": measure, "units": units, "error": str(exc)}


class ArimaService(BaseModel):
    """All configured series, one after the other, through any Backend; raises
    ForecastFailed (after storing the others) when a series cannot be forecast. `now`
    (default: the clock) is the moment of the forecast."""

    def run(  # type: ignore[override]
        self, config: ArimaConfig | dict[str, Any] | None = None, *, now: datetime | None = None
    ) -> dict[str, Any]:
        cfg = (
            config if isinstance(config, ArimaConfig) else ArimaConfig.model_validate(config or {})
        )
        now = as_utc(now) if now is not None else utcnow()
        cfg = cfg.with_predict_from(now)
        assert cfg.data.predict_from_datetime is not None
        set_up(self.backend, cfg)
        results = []
        for index, (sensor, measure, units) in enumerate(cfg.series()):
            created = creation_instant(now, index)
            results.append(
                run_guarded(
                    lambda s=sensor, m=measure, u=units, c=created: forecast_series(
                        lambda: nullcontext(self.backend), cfg, s, m, u, time_created=c
                    ),
                    sensor,
                    measure,
                    units,
                )
            )
        summary = summarise(results, cfg.data.predict_from_datetime)
        if summary["failed"]:
            raise ForecastFailed(summary)
        return summary
