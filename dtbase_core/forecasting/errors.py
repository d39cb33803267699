"""The forecast's errors, importable without pandas."""

from __future__ import annotations


class ForecastError(Exception):
    """A series cannot be forecast (no data, wrong units, too short...): the message says
    which series and why."""
