"""Forecasts that never fall over: numerical trouble stays inside its series.

- The fallbacks of the fit (arima.ATTEMPTS), each reached by a series that needs it.
- A property-style test: many synthetic series (constant, near-constant, pure sine, the
  issue's sine with a deterministic ripple, steps, spikes, gaps, very short) forecast
  with the moment of the forecast ("now", injected) at every hour of the day. Every series
  gets a forecast whose lower <= mean <= upper bounds are finite, or a failure with a
  reason; the forecast as a whole never fails on its own. It runs the same jobs as the
  orchestration (ArimaService) on an in-memory backend, with small series and orders.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dtbase_core.client import Reading
from dtbase_core.forecasting import arima
from dtbase_core.forecasting.config import ArimaSection
from dtbase_core.forecasting.errors import ForecastError
from dtbase_core.forecasting.runs import ArimaService, ForecastFailed
from tests.test_forecasting import MemoryBackend, hourly

DAY = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
DAYS = 5
# Small enough to fit in well under a second on a busy core; the seasonal differencing
# makes an exactly periodic series degenerate, as the default orders do.
ORDERS = {"arima_order": [1, 1, 0], "seasonal_order": [0, 1, 0, 24]}


def _ripple(i: np.ndarray, stamps: pd.DatetimeIndex) -> np.ndarray:
    return 18 + 3 * np.sin(2 * np.pi * stamps.hour / 24) + 0.3 * np.sin(1.7 * i)


# name → values from (index, timestamps); "short" and "gaps" are cut below.
KINDS: dict[str, Callable[[np.ndarray, pd.DatetimeIndex], np.ndarray]] = {
    "constant": lambda i, t: np.full(len(i), 20.0),
    "near-constant": lambda i, t: 20.0 + 1e-9 * (i % 2),
    "sine": lambda i, t: 18 + 3 * np.sin(2 * np.pi * t.hour / 24),
    "ripple": _ripple,
    "steps": lambda i, t: np.where((i // 30) % 2 == 0, 15.0, 22.0),
    "spikes": lambda i, t: 20 + np.sin(2 * np.pi * t.hour / 24) + 40.0 * (i % 37 == 0),
    "gaps": _ripple,
    "short": _ripple,
}


def seed(backend: MemoryBackend, now: datetime) -> None:
    """DAYS days of readings (two minutes past each hour) up to `now`, per kind."""
    first = pd.Timestamp(now - timedelta(days=DAYS)).ceil("h")
    stamps = pd.date_range(first, now, freq="h") + pd.Timedelta(minutes=2)
    index = np.arange(len(stamps))
    for kind, values_of in KINDS.items():
        values = values_of(index, stamps)
        keep = np.ones(len(stamps), dtype=bool)
        if kind == "gaps":  # a 10-hour hole, a 3-hour one, and every 7th reading missing
            keep[20:30] = keep[70:73] = False
            keep[::7] = False
        if kind == "short":
            keep[: len(stamps) - 30] = False
        backend.units[(kind, "T")] = "C"
        backend.readings[(kind, "T")] = [
            Reading(float(v), ts.to_pydatetime())
            for ts, v, k in zip(stamps, values, keep, strict=True)
            if k
        ]


def config() -> dict[str, Any]:
    return {
        "arima": {**ORDERS, "perform_cv": False, "hours_forecast": 6},
        "data": {"num_days_training": DAYS},
        "sensors": {"include_sensors": list(KINDS), "include_measures": [["T", "C"]]},
    }


@pytest.mark.timeout(600)
def test_every_series_at_every_hour_gets_a_forecast_or_a_reason() -> None:
    fallbacks: dict[str, set[str | None]] = {kind: set() for kind in KINDS}
    for hour in range(24):
        now = DAY + timedelta(hours=hour, minutes=42)
        backend = MemoryBackend()
        seed(backend, now)
        try:
            summary = ArimaService(backend).run(config(), now=now)  # type: ignore[arg-type]
        except ForecastFailed as some_failed:  # the others were stored
            summary = some_failed.summary
        assert summary["predict_from"] == now.isoformat().replace("+00:00", "Z")
        assert [s["sensor"] for s in summary["series"]] == list(KINDS)
        runs = {run["sensor_unique_id"]: run for run in backend.runs}
        for result in summary["series"]:
            kind = result["sensor"]
            if "error" in result:
                assert result["error"].startswith(f"sensor '{kind}', measure 'T' ('C'): ")
                assert len(result["error"]) > len(f"sensor '{kind}', measure 'T' ('C'): ")
                assert kind not in runs
                continue
            products = {p["measure_name"]: p["values"] for p in runs[kind]["measures_and_values"]}
            mean, lower, upper = (
                np.array(products[name]) for name in ("Mean T", "Lower Bound T", "Upper Bound T")
            )
            assert len(mean) == 6, (kind, hour)
            assert np.isfinite(np.concatenate([mean, lower, upper])).all(), (kind, hour)
            assert ((lower <= mean) & (mean <= upper)).all(), (kind, hour)
            assert result["metrics"] == runs[kind]["metrics"]
            fallbacks[kind].add(result["metrics"]["fallback"])
        # Only the very short series cannot be forecast; it says why.
        failed = {s["sensor"]: s["error"] for s in summary["series"] if "error" in s}
        assert set(failed) == {"short"}, (hour, failed)
        assert "observations after cleaning; these orders need at least 97" in failed["short"]
    # The degenerate series needed the fallbacks; the plain ones did not.
    assert fallbacks["steps"] == {None} and None in fallbacks["spikes"], fallbacks
    assert fallbacks["constant"] - {None}, fallbacks


# --- each fallback, reached by a series that needs it ------------------------------------------


SMALL = ArimaSection(**ORDERS, hours_forecast=6, perform_cv=False)  # type: ignore[arg-type]


def attempts_tried(monkeypatch: pytest.MonkeyPatch, failing: set[str]) -> list[str]:
    """Make the named attempts raise LinAlgError; the names of the attempts fitted."""
    tried: list[str] = []
    real_fit = arima.fit

    def fit(series: pd.Series, cfg: ArimaSection, attempt: arima.Attempt, **kw: Any) -> Any:
        tried.append(attempt.name)
        if attempt.name in failing:
            raise np.linalg.LinAlgError("LU decomposition error.")
        return real_fit(series, cfg, attempt, **kw)

    monkeypatch.setattr(arima, "fit", fit)
    return tried


def noisy(days: int = 5) -> pd.Series:
    rng = np.random.default_rng(3)
    hours = np.arange(24 * days)
    return hourly(list(20 + 3 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.3, len(hours))))


@pytest.mark.parametrize("works", [1, 2, 3, 4])
def test_each_fallback_in_turn(monkeypatch: pytest.MonkeyPatch, works: int) -> None:
    names = [a.name for a in arima.ATTEMPTS]
    tried = attempts_tried(monkeypatch, set(names[:works]))
    result = arima.pipeline(noisy(), SMALL, timedelta(hours=1))
    assert tried == names[: works + 1]
    assert result.metrics["fallback"] == names[works]
    assert result.metrics["fit_failures"] == [
        f"{name}: LinAlgError: LU decomposition error." for name in names[:works]
    ]
    assert np.isfinite(result.mean).all() and (result.lower <= result.upper).all()


def test_when_every_attempt_fails_the_reason_names_each(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts_tried(monkeypatch, {a.name for a in arima.ATTEMPTS})
    with pytest.raises(ForecastError) as caught:
        arima.pipeline(noisy().rename("s1"), SMALL, timedelta(hours=1))
    message = str(caught.value)
    assert message.startswith("s1: no model could be fitted (configured: LinAlgError: ")
    assert all(a.name + ": LinAlgError" in message for a in arima.ATTEMPTS)


def test_a_forecast_that_is_not_finite_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    real_fit = arima.fit

    def fit(series: pd.Series, cfg: ArimaSection, attempt: arima.Attempt, **kw: Any) -> Any:
        results = real_fit(series, cfg, attempt, **kw)
        if attempt.name == "configured":
            results.get_forecast = lambda steps: _NanForecast(steps)
        return results

    monkeypatch.setattr(arima, "fit", fit)
    result = arima.pipeline(noisy(), SMALL, timedelta(hours=1))
    assert result.metrics["fallback"] == "powell optimiser"
    assert result.metrics["fit_failures"] == ["configured: the forecast mean is not finite"]


class _NanForecast:
    def __init__(self, steps: int) -> None:
        self.steps = steps

    def summary_frame(self, alpha: float) -> pd.DataFrame:
        nan = [math.nan] * self.steps
        return pd.DataFrame({"mean": nan, "mean_ci_lower": nan, "mean_ci_upper": nan})


def test_non_convergence_tries_another_optimiser_from_where_it_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_fit = arima.fit
    starts: list[Any] = []

    def fit(series: pd.Series, cfg: ArimaSection, attempt: arima.Attempt, **kw: Any) -> Any:
        starts.append(kw.get("start_params"))
        results = real_fit(series, cfg, attempt, **kw)
        if attempt.name == "configured":
            results.mle_retvals = {**results.mle_retvals, "converged": False}
        return results

    monkeypatch.setattr(arima, "fit", fit)
    result = arima.pipeline(noisy(), SMALL, timedelta(hours=1))
    assert result.metrics["fallback"] == "powell optimiser" and result.metrics["converged"]
    assert result.metrics["fit_failures"] == ["configured: the optimiser did not converge"]
    assert starts[0] is None and starts[1] is not None and len(starts) == 2  # warm-started


def test_the_issue_s_series_at_the_hour_that_failed_is_forecast() -> None:
    """The issue's two-sensor data with the default orders, at 13:42 UTC: 711 hourly
    points after the farm-cycle cut, on which the configured fit fails: LinAlgError on some
    CPUs, no convergence on others (the BLAS decides). A raised LinAlgError is tested
    above; here, that real data whose configured fit fails is still forecast."""
    from dtbase_core.forecasting import data
    from dtbase_core.forecasting.config import ArimaConfig

    cfg = ArimaConfig.model_validate({"arima": {"perform_cv": False}})
    now = datetime(2026, 11, 29, 13, 42, tzinfo=UTC)
    stamps = pd.date_range((now - timedelta(days=30)).replace(minute=0), now, freq="h")
    ripple = pd.Series(_ripple(np.arange(len(stamps)), stamps), index=stamps, name="TRH1")
    cleaned = data.clean(ripple, mins_from_the_hour=15, step=timedelta(hours=1))
    prepared, _ = data.prepare(
        cleaned, cycle_start=cfg.others.cycle_start, days_interval=30, weekly_seasonality=True
    )
    assert len(prepared) == 711
    result = arima.pipeline(prepared, cfg.arima, timedelta(hours=1))
    assert result.metrics["fit_failures"][0].startswith("configured: ")
    assert result.metrics["fallback"] is not None
    assert np.isfinite(result.mean).all() and (result.lower <= result.mean).all()
    assert (result.mean <= result.upper).all() and len(result.mean) == 48
