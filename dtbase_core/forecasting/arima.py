"""SARIMAX for one prepared series: cross-validation, fit, forecast (the fit step of
DTBase's arima.py).

As DTBase's `arima_pipeline`, except that the cross-validation metrics are returned (to
be stored with the run) and that the time-series split is implemented here with
scikit-learn's `TimeSeriesSplit(n_splits, test_size)` semantics rather than pulled in with
scikit-learn: fold k tests the `test_size` observations that follow the first
n - (n_splits - k) * test_size, and trains on everything before them.

Numerical trouble in the fit (LinAlgError, non-convergence, a forecast that is not finite)
stays inside the series: `robust_fit` walks a documented sequence of fallbacks (ATTEMPTS),
records the one used in the run's metrics, and raises ForecastError naming each failure
only when all fail.

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
    # 720 is meant (DTBase's arima.py: int(n * 0.2 // 4)).
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


JITTER = 1e-4  # of the series' scale: far below any sensor's resolution


@dataclass(frozen=True)
class Attempt:
    """One way of fitting the model. `robust_fit` tries `ATTEMPTS` in order."""

    name: str
    method: str = "lbfgs"  # statsmodels' optimiser
    enforce: bool = True  # enforce stationarity and invertibility
    simpler: bool = False  # one AR term and the differencing, no MA or seasonal AR/MA
    jitter: bool = False  # add a tiny deterministic noise to the series
    # Tried when the previous attempts gave a forecast but their optimiser did not converge.
    for_nonconvergence: bool = False

    def orders(self, cfg: ArimaSection) -> tuple[tuple[int, int, int], tuple[int, int, int, int]]:
        if not self.simpler:
            return cfg.arima_order, cfg.seasonal_order
        p, d, _ = cfg.arima_order
        _, big_d, _, period = cfg.seasonal_order
        return (min(p, 1), d, 0), ((0, big_d, 0, period) if big_d else (0, 0, 0, 0))

    def prepare(self, series: pd.Series) -> pd.Series:
        if not self.jitter:
            return series
        values = series.to_numpy(dtype="float64")
        scale = JITTER * max(float(np.std(values)), float(np.abs(values).mean()), 1.0)
        noise = np.random.default_rng(0).standard_normal(len(values)) * scale
        return series + noise


# The fallbacks, in order, when the configured model fails (an exception such as
# LinAlgError "LU decomposition error", or a forecast that is not finite or whose bounds
# are out of order):
# 1. Powell's method: derivative-free, so it does not step along a numerical gradient into
#    a singular region; it also continues (warm-started) an L-BFGS fit that stopped
#    before converging, the only fallback tried for mere non-convergence, since the
#    others change the model.
# 2. No enforced stationarity or invertibility: the transformation that enforces them is
#    what breaks near a unit root.
# 3. A simpler order: one AR term with the configured differencing.
# 4. That simpler order on the series with a tiny deterministic jitter (JITTER of its
#    scale, fixed seed): a constant or exactly periodic series has a (seasonally)
#    differenced series with no variance, whose likelihood is singular.
# A forecast whose optimiser did not converge is kept when no attempt converges. A series
# whose differenced series does not vary at all (constant, near-constant, exactly periodic
# with seasonal differencing) goes straight to the last: the others fail on it, slowly.
ATTEMPTS = (
    Attempt("configured"),
    Attempt("powell optimiser", method="powell", for_nonconvergence=True),
    Attempt("no enforced stationarity", enforce=False),
    Attempt("simpler order", simpler=True),
    Attempt("simpler order with jitter", simpler=True, jitter=True),
)


def fit(
    series: pd.Series,
    cfg: ArimaSection,
    attempt: Attempt = ATTEMPTS[0],
    start_params: Any = None,
) -> Any:
    """SARIMAX with the configured orders (or an attempt's changes to them), fitted by
    maximum likelihood."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    order, seasonal_order = attempt.orders(cfg)
    model = SARIMAX(
        attempt.prepare(series),
        order=order,
        seasonal_order=seasonal_order,
        trend=cfg.trend,
        enforce_stationarity=attempt.enforce,
        enforce_invertibility=attempt.enforce,
    )
    with warnings.catch_warnings():
        # Convergence chatter is expected on short folds; results are judged by the metrics
        # (and robust_fit reads convergence from the optimiser's own report).
        warnings.simplefilter("ignore")
        return model.fit(start_params=start_params, disp=False, method=attempt.method)


def cross_validate(
    series: pd.Series, cfg: ArimaSection, timer: Timer, attempt: Attempt = ATTEMPTS[0]
) -> dict[str, Any]:
    """Mean RMSE and MAPE over the folds. The model (as `attempt` fits it) is fitted on
    the first fold's training data only; later folds extend it with the previous test fold
    (or append with a refit when `cv_refit`)."""
    folds = cross_validator(len(series))
    errors_rmse, errors_mape = [], []
    results = None
    previous_test: pd.Series | None = None
    for train_index, test_index in folds:
        test = series.iloc[test_index.start : test_index.stop]
        with timer, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if results is None:
                results = fit(series.iloc[train_index.start : train_index.stop], cfg, attempt)
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
class Fitted:
    """The forecast of the attempt that worked, and what went wrong before it."""

    frame: pd.DataFrame  # statsmodels' summary frame: mean, mean_ci_lower, mean_ci_upper
    attempt: Attempt
    converged: bool
    failures: list[str]

    def metrics(self) -> dict[str, Any]:
        """What is stored with the run: the fallback used (null for the configured model),
        whether its optimiser converged, and why earlier attempts were not kept."""
        used = None if self.attempt is ATTEMPTS[0] else self.attempt.name
        found: dict[str, Any] = {"fallback": used, "converged": self.converged}
        if self.failures:
            found["fit_failures"] = self.failures
        return found


def forecast_problem(frame: pd.DataFrame) -> str | None:
    """Why a forecast cannot be used (values not finite, bounds out of order), or None."""
    mean, lower, upper = (
        frame[c].to_numpy(dtype="float64") for c in ("mean", "mean_ci_lower", "mean_ci_upper")
    )
    for name, values in (("mean", mean), ("lower bound", lower), ("upper bound", upper)):
        if not np.isfinite(values).all():
            return f"the forecast {name} is not finite"
    if not ((lower <= mean) & (mean <= upper)).all():
        return "the forecast bounds are out of order"
    return None


def _converged(results: Any) -> bool:
    retvals = getattr(results, "mle_retvals", None)
    return bool(retvals.get("converged", True)) if isinstance(retvals, dict) else True


def does_not_vary(series: pd.Series, cfg: ArimaSection) -> bool:
    """Whether the series, differenced as the configured model differences it, is
    constant (to within 1e-9 of the series' scale)."""
    values = series.to_numpy(dtype="float64")
    _, d, _ = cfg.arima_order
    _, big_d, _, period = cfg.seasonal_order
    differenced = values
    for _ in range(big_d if period else 0):
        differenced = differenced[period:] - differenced[:-period]
    differenced = np.diff(differenced, n=d)
    scale = max(float(np.abs(values).max()) if values.size else 0.0, 1.0)
    return differenced.size == 0 or float(np.ptp(differenced)) <= 1e-9 * scale


def robust_fit(series: pd.Series, cfg: ArimaSection, steps: int) -> Fitted:
    """Fit and forecast `steps` ahead, walking ATTEMPTS until one converges with a usable
    forecast; a usable forecast that did not converge is kept if none does. A
    ForecastError naming each attempt's failure when none gives a usable forecast."""
    failures: list[str] = []
    kept: Fitted | None = None  # usable, but its optimiser did not converge
    previous: Any = None  # the last results, to warm-start the next optimiser
    attempts: tuple[Attempt, ...] = ATTEMPTS
    if does_not_vary(series, cfg):
        failures.append(f"{ATTEMPTS[0].name}: the differenced series does not vary")
        attempts = ATTEMPTS[-1:]
    for attempt in attempts:
        if kept is not None and not attempt.for_nonconvergence:
            break
        warm = previous.params if attempt.for_nonconvergence and previous is not None else None
        try:
            results = fit(series, cfg, attempt, start_params=warm)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frame = results.get_forecast(steps=steps).summary_frame(alpha=cfg.alpha)
            problem = forecast_problem(frame)
        except Exception as exc:  # statsmodels' numerical errors have many types
            problem = f"{type(exc).__name__}: {exc}"
            results = None
        if problem is not None:
            failures.append(f"{attempt.name}: {problem}")
            continue
        converged = _converged(results)
        previous = results
        if converged:
            return Fitted(frame, attempt, True, failures)
        failures.append(f"{attempt.name}: the optimiser did not converge")
        kept = Fitted(frame, attempt, False, list(failures))
    if kept is not None:
        kept.failures = failures
        return kept
    raise ForecastError(f"{series.name}: no model could be fitted ({'; '.join(failures)})")


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
    """Fit on the whole series (robust_fit: with fallbacks) and forecast `hours_forecast`
    hours past its last timestamp with a (1 - alpha) interval; then cross-validate (if
    configured) the model that was kept."""
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
    with timer:
        fitted = robust_fit(series, cfg, int(timedelta(hours=cfg.hours_forecast) / step))
    metrics: dict[str, Any] = {}
    if cfg.perform_cv:
        try:
            metrics = cross_validate(series, cfg, timer, fitted.attempt)
        except Exception as exc:  # as DTBase: a failed CV does not stop the forecast
            log.warning("%s: cross-validation failed: %s", series.name, exc)
            metrics = {"cv_error": f"{type(exc).__name__}: {exc}"}
    frame = fitted.frame
    return Forecast(
        frame["mean"],
        frame["mean_ci_lower"],
        frame["mean_ci_upper"],
        {**metrics, **fitted.metrics()},
        timer.seconds,
    )
