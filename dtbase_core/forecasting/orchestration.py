"""The steps of the ARIMA forecast as a Durable Functions orchestration; the function app
registers them as `arima_orchestrator` (function_app/forecasting.py).

Fixes "now" (the orchestration's deterministic clock) as predict_from when the
configuration leaves it out, sets up the model and measures (one activity), fans out one
fit activity per (sensor, measure), and reports as the series finish (custom status
`{"stage": "fitting", "done": k, "total": n, "series": [...]}`, one outcome per finished
series). It returns the summary (run ids and, per series, its result), or fails with
ForecastFailed naming each failed series and the runs created.

A series fails in one of two ways, treated alike: its activity returns an error entry
(runs.run_guarded: no data, wrong units...) or the activity raises, whatever the
exception. The tasks are awaited one at a time with `task_any`, which hands back the task
whatever its outcome, and never with `task_all`: the SDK (azure-functions-durable 1.7.0)
fails a `task_all` on the first failed child, and when that child had finished before the
`task_all` was built and a later child had too, it then overwrites the failure with
success and returns the list of results with the Exception in it.

Written against the context's methods only (no SDK import) and with the activities'
names as parameters, so that tests can run it with stand-in activities.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from dtbase_core.forecasting.config import ArimaConfig
from dtbase_core.forecasting.runs import (
    ForecastFailed,
    creation_instant,
    series_label,
    summarise,
)
from dtbase_core.timeutil import as_utc, iso_z

# Azure keeps at most 16 KB of custom status: at most this many outcomes are listed there
# (failures and fallbacks first), each reason cut to REASON_CHARS.
LISTED_OUTCOMES = 50
REASON_CHARS = 200


def task_outcome(value: Any, sensor: str, measure: str, units: str | None) -> dict[str, Any]:
    """A finished fit task's value as the series' result: the activity's own result, or
    an error entry when the activity raised (the SDK hands over an Exception whose first
    line is "Activity function '<name>' failed: <type>: <message>")."""
    if isinstance(value, BaseException):
        lines = str(value).strip().splitlines()
        reason = lines[0].strip() if lines else type(value).__name__
        error = f"{series_label(sensor, measure, units)}: {reason}"
        return {"sensor": sensor, "measure": measure, "units": units, "error": error}
    if not isinstance(value, dict):
        error = f"{series_label(sensor, measure, units)}: the activity returned {value!r}"
        return {"sensor": sensor, "measure": measure, "units": units, "error": error}
    return value


def outcome(result: dict[str, Any]) -> dict[str, Any]:
    """One series' outcome, short enough for the custom status: its run and the fallback
    used (null: the configured model), or why it failed."""
    entry = {k: result.get(k) for k in ("sensor", "measure", "units")}
    if "error" in result:
        entry["error"] = str(result["error"])[:REASON_CHARS]
    else:
        entry["run_id"] = result.get("run_id")
        entry["fallback"] = (result.get("metrics") or {}).get("fallback")
    return entry


def outcomes(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The custom status's `series` (in configuration order) and, if some were left out
    to keep it small, `omitted`."""
    entries = [outcome(r) for r in results]
    if len(entries) <= LISTED_OUTCOMES:
        return {"series": entries}
    notable = [e for e in entries if "error" in e or e.get("fallback")]
    plain = [e for e in entries if not ("error" in e or e.get("fallback"))]
    listed = (notable + plain)[:LISTED_OUTCOMES]
    order = {id(e): i for i, e in enumerate(entries)}
    listed.sort(key=lambda e: order[id(e)])
    return {"series": listed, "omitted": len(entries) - len(listed)}


def orchestrate(context: Any, set_up: str, fit_series: str) -> Generator[Any, Any, Any]:
    """The orchestrator function's body: `yield from orchestrate(context, ...)`."""
    now = as_utc(context.current_utc_datetime)
    config = ArimaConfig.model_validate(context.get_input() or {}).with_predict_from(now)
    predict_from = config.data.predict_from_datetime
    assert predict_from is not None
    payload = config.model_dump(mode="json")
    series = config.series()
    total = len(series)
    context.set_custom_status({"stage": "setting up", "done": 0, "total": total})
    yield context.call_activity(set_up, payload)

    context.set_custom_status({"stage": "fitting", "done": 0, "total": total, "series": []})
    pending = {
        index: context.call_activity(
            fit_series,
            {
                "config": payload,
                "sensor": sensor,
                "measure": measure,
                "units": units,
                "time_created": iso_z(creation_instant(now, index)),
            },
        )
        for index, (sensor, measure, units) in enumerate(series)
    }
    # Wait for any of those still running, again and again (the SDK schedules each
    # activity once, however often it is waited for): progress as the series finish.
    results: dict[int, dict[str, Any]] = {}
    while pending:
        finished = yield context.task_any(list(pending.values()))
        index = next(i for i, task in pending.items() if task is finished)
        del pending[index]
        results[index] = task_outcome(finished.result, *series[index])
        done = [results[i] for i in sorted(results)]
        context.set_custom_status(
            {"stage": "fitting", "done": len(results), "total": total, **outcomes(done)}
        )

    summary = summarise([results[i] for i in range(total)], predict_from)
    context.set_custom_status(
        {
            "stage": "failed" if summary["failed"] else "done",
            "done": total,
            "total": total,
            "failed": summary["failed"],
            **outcomes(summary["series"]),
        }
    )
    if summary["failed"]:
        raise ForecastFailed(summary)
    return summary
