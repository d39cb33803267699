"""Training data for one series: clean, resample, cut to the farm cycle, impute (as
DTBase's arima.py, but per series).

Fixes (docs/api.md, Weather ingress and forecasts): the imputation really runs (DTBase
compared column names with (name, units) tuples, so it never did and NaNs reached
SARIMAX), groups that are all missing fall back to coarser groups, and every series is
prepared on its own: nothing is shared between sensors.

This module imports pandas: only activities (and tests) import it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from dtbase_core.forecasting.errors import ForecastError

log = logging.getLogger(__name__)


def to_series(readings: Sequence[Any], name: str) -> pd.Series:
    """Readings (objects with `.value` and `.timestamp`) as a float Series on a UTC index."""
    values = []
    for reading in readings:
        value = reading.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ForecastError(f"{name}: readings must be numbers to be forecast (got {value!r})")
        values.append(float(value))
    index = pd.DatetimeIndex([pd.Timestamp(r.timestamp) for r in readings], name="timestamp")
    if index.tz is None:
        index = index.tz_localize("UTC")
    return pd.Series(values, index=index.tz_convert("UTC"), name=name, dtype="float64")


def clean(series: pd.Series, *, mins_from_the_hour: int, step: timedelta) -> pd.Series:
    """DTBase's cleaning: keep a reading only if it lies within ±`mins_from_the_hour` of a
    grid point (the full hours, for a step of one hour), average the readings of each
    grid point, and lay them on the grid from (earliest floored point + one step) to the
    latest floored point. Grid points without readings are NaN."""
    if series.empty:
        return series.copy()
    freq = pd.Timedelta(step)
    index = series.index
    nearest = index.round(freq)
    close = np.abs((index - nearest).total_seconds()) <= mins_from_the_hour * 60
    kept = pd.Series(series.to_numpy()[close], index=nearest[close])
    means = kept.groupby(level=0).mean()
    floored = index.floor(freq)
    grid = pd.date_range(floored.min() + freq, floored.max(), freq=freq, name="timestamp")
    return means.reindex(grid).rename(series.name)


def farm_cycle_cutoff(last: pd.Timestamp, cycle_start: time) -> pd.Timestamp:
    """DTBase's `standardize_timestamp`: the end of the last whole half farm cycle.

    With `s` the cycle's start that day: from `s` on, `s`; at or before `s` - 12 h, the
    previous day's `s`; otherwise `s` - 12 h. (With the default 16:00: 17:00 → 16:00 that
    day, 03:00 and 04:00 → 16:00 the day before, 10:00 → 04:00 that day.)
    """
    start = last.normalize() + pd.Timedelta(
        hours=cycle_start.hour, minutes=cycle_start.minute, seconds=cycle_start.second
    )
    half = pd.Timedelta(hours=12)
    if last >= start:
        return start
    if last <= start - half:
        return start - pd.Timedelta(days=1)
    return start - half


def break_up_timestamp(index: pd.DatetimeIndex, days_interval: int) -> pd.DataFrame:
    """Time of day, weekday (Monday 0) and pseudo-season (blocks of `days_interval` days
    from the first timestamp) of each timestamp."""
    elapsed = index - index[0]
    return pd.DataFrame(
        {
            "time": index.time,
            "weekday": index.day_of_week,
            "pseudo_season": elapsed // pd.Timedelta(days=days_interval),
        },
        index=index,
    )


def impute(series: pd.Series, *, days_interval: int, weekly_seasonality: bool) -> pd.Series:
    """Replace each missing value by the mean of the values observed at the same time of
    day on the same weekday in the same pseudo-season (DTBase's groups; without weekly
    seasonality, the same time of day in the same pseudo-season).

    Where a whole group is missing, coarser groups fill in, in turn: the same weekday and
    time over all seasons, the same time of day over all seasons, and last a linear
    interpolation in time (with the nearest value at the ends). A series with no value at
    all is an error."""
    if series.notna().sum() == 0:
        raise ForecastError(f"{series.name}: no value to impute from")
    if not series.isna().any():
        return series
    parts = break_up_timestamp(series.index, days_interval)
    groupings: list[list[str]] = (
        [["pseudo_season", "weekday", "time"], ["weekday", "time"], ["time"]]
        if weekly_seasonality
        else [["pseudo_season", "time"], ["time"]]
    )
    filled = series.copy()
    for keys in groupings:
        if not filled.isna().any():
            break
        columns = [parts[k] for k in keys]
        group_means = series.groupby(columns).transform("mean")
        filled = filled.fillna(group_means)
    if filled.isna().any():
        filled = filled.interpolate(method="time").ffill().bfill()
    return filled


def prepare(
    series: pd.Series,
    *,
    cycle_start: time,
    days_interval: int,
    weekly_seasonality: bool,
) -> tuple[pd.Series, int]:
    """Cut the series at its farm-cycle cutoff, then impute; (series, values imputed)."""
    if series.empty:
        raise ForecastError(f"{series.name}: no training data")
    cutoff = farm_cycle_cutoff(series.index[-1], cycle_start)
    cut = series[series.index <= cutoff]
    if cut.empty or cut.notna().sum() == 0:
        raise ForecastError(
            f"{series.name}: no reading before the farm-cycle cutoff {cutoff.isoformat()}"
        )
    missing = int(cut.isna().sum())
    prepared = impute(cut, days_interval=days_interval, weekly_seasonality=weekly_seasonality)
    return prepared, missing


def training_window(predict_from: datetime, num_days: int) -> tuple[datetime, datetime]:
    return predict_from - timedelta(days=num_days), predict_from
