"""SARIMAX for one prepared series: cross-validation, fit, forecast (API.md §4.4 step 5).

As DTBase's `arima_pipeline`, except that the cross-validation metrics are returned (to
be stored with the run) and that the time-series split is implemented here with
scikit-learn's `TimeSeriesSplit(n_splits, test_size)` semantics rather than pulled in with
scikit-learn: fold k tests the `test_size` observations that follow the first
n - (n_splits - k) * test_size, and trains on everything before them.

This module imports statsmodels: only activities (and tests) import it.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from dtbase_core.forecasting.config import ArimaSection
from dtbase_core.forecasting.errors import ForecastError

log = logging.getLogger(__name__)

N_SPLITS = 4
TRAIN_FRACTION = 0.8


def time_series_split(
    n_obs: int, n_splits: int = N_SPLITS, test_size: int | None = None
) -> list[tuple[range, range]]:
    """(train indices, test indices) per fold, as sklearn's TimeSeriesSplit with no gap and
    no maximum training size."""
    if n_splits < 2:
        raise ValueError("n_splits must be at least 2")
    test_size = test_size if test_size is not None else n_obs // (n_splits + 1)
    if test_size < 1:
        raise ValueError("the test folds would be empty")
    first_test = n_obs - n_splits * test_size
    if first_test < 1:
        raise ValueError(f"{n_obs} observations are too few for {n_splits} folds of {test_size}")
    return [
        (range(0, start), range(start, start + test_size))
        for start in range(first_test, n_obs, test_size)
    ]


def cross_validator(
    n_obs: int, train_fraction: float = TRAIN_FRACTION, n_splits: int = N_SPLITS
) -> list[tuple[range, range]]:
    """DTBase's `construct_cross_validator`: the last (1 - train_fraction) of the data is
    cut into `n_splits` test folds of int(n * (1 - train_fraction) // n_splits) each."""
    if not 0.5 <= train_fraction < 1:
        raise ValueError("the training fraction must be >= 0.5 and < 1")
    # Rounded first: 720 * (1 - 0.8) is 143.99999999999997 in floating point, and a fifth of
    # 720 is meant (API.md: int(n * 0.2 // 4)).
    test_size = int(round(n_obs * (1 - train_fraction), 9) // n_splits)
    if test_size < 1:
        raise ValueError(f"{n_obs} observations are too few to cross-validate")
    return time_series_split(n_obs, n_splits, test_size)


def rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((truth - predicted) ** 2)))


def mape(truth: np.ndarray, predicted: np.ndarray) -> float:
    """As sklearn's mean_absolute_percentage_error: a fraction, |truth| floored at eps."""
    eps = np.finfo(np.float64).eps
    return float(np.mean(np.abs(truth - predicted) / np.maximum(np.abs(truth), eps)))


@dataclass
class Timer:
    """Seconds spent inside statsmodels (fits, extensions, forecasts)."""

    seconds: float = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start


def fit(series: pd.Series, cfg: ArimaSection) -> Any:
    """SARIMAX with the configured orders, fitted by maximum likelihood."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    model = SARIMAX(
        series,
        order=cfg.arima_order,
        seasonal_order=cfg.seasonal_order,
        trend=cfg.trend,
    )
    with warnings.catch_warnings():
        # Convergence chatter is expected on short folds; results are judged by the metrics.
        warnings.simplefilter("ignore")
        return model.fit(disp=False)


def cross_validate(series: pd.Series, cfg: ArimaSection, timer: Timer) -> dict[str, Any]:
    """Mean RMSE and MAPE over the folds. The model is fitted on the first fold's training
    data only; later folds extend it with the previous test fold (or append with a refit
    when `cv_refit`)."""
    folds = cross_validator(len(series))
    errors_rmse, errors_mape = [], []
    results = None
    previous_test: pd.Series | None = None
    for train_index, test_index in folds:
        test = series.iloc[test_index.start : test_index.stop]
        with timer, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if results is None:
                results = fit(series.iloc[train_index.start : train_index.stop], cfg)
            elif cfg.cv_refit:
                results = results.append(previous_test, refit=True)
            else:
                results = results.extend(previous_test)
            predicted = np.asarray(results.forecast(steps=len(test)), dtype="float64")
        truth = test.to_numpy(dtype="float64")
        errors_rmse.append(rmse(truth, predicted))
        errors_mape.append(mape(truth, predicted))
        previous_test = test
    return {
        "RMSE": float(np.mean(errors_rmse)),
        "MAPE": float(np.mean(errors_mape)),
        "cv_folds": len(folds),
        "cv_test_size": len(folds[0][1]),
    }


@dataclass
class Forecast:
    mean: pd.Series
    lower: pd.Series
    upper: pd.Series
    metrics: dict[str, Any] = field(default_factory=dict)
    fit_seconds: float = 0.0


def minimum_length(cfg: ArimaSection) -> int:
    """Observations SARIMAX needs at least: the differencing, and three seasons more."""
    p, d, q = cfg.arima_order
    big_p, big_d, big_q, s = cfg.seasonal_order
    return d + big_d * s + max(3 * max(s, 1), p + q + (big_p + big_q) * s + 1)


def pipeline(series: pd.Series, cfg: ArimaSection, step: timedelta) -> Forecast:
    """Cross-validate (if configured), fit on the whole series and forecast
    `hours_forecast` hours past its last timestamp with a (1 - alpha) interval."""
    if not isinstance(series.index, pd.DatetimeIndex):
        raise ForecastError("the series must be indexed by timestamp")
    if series.isna().any():
        raise ForecastError(f"{series.name}: missing values reached the model")
    needed = minimum_length(cfg)
    if len(series) < needed:
        raise ForecastError(
            f"{series.name}: {len(series)} observations after cleaning; these orders need "
            f"at least {needed}"
        )
    series = series.asfreq(pd.Timedelta(step))
    timer = Timer()
    metrics: dict[str, Any] = {}
    if cfg.perform_cv:
        try:
            metrics = cross_validate(series, cfg, timer)
        except Exception as exc:  # as DTBase: a failed CV does not stop the forecast
            log.warning("%s: cross-validation failed: %s", series.name, exc)
            metrics = {"cv_error": f"{type(exc).__name__}: {exc}"}
    with timer:
        results = fit(series, cfg)
        steps = int(timedelta(hours=cfg.hours_forecast) / step)
        frame = results.get_forecast(steps=steps).summary_frame(alpha=cfg.alpha)
    mean, lower, upper = frame["mean"], frame["mean_ci_lower"], frame["mean_ci_upper"]
    for name, values in (("mean", mean), ("lower bound", lower), ("upper bound", upper)):
        if not np.isfinite(values.to_numpy(dtype="float64")).all():
            raise ForecastError(f"{series.name}: the model's forecast {name} is not finite")
    return Forecast(mean, lower, upper, metrics, timer.seconds)
