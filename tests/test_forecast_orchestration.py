"""The ARIMA orchestration's handling of failed series, through the local
Durable runtime with stand-in activities (tests/durable_app.py: `t_arima` runs the real
orchestration steps with `t_arima_fit_series`, which raises, returns an error or succeeds
by the sensor's name).

An activity that raises, whatever the exception, is a failed series like one whose
activity returned an error: the others are stored, and the instance fails naming each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from dtbase_core.forecasting.orchestration import LISTED_OUTCOMES, outcomes
from local.cli import migrate
from local.durable import DurableRuntime
from tests.support import TestDatabase
from tests.test_local_durable import new_runtime, wait_done


@pytest.fixture(scope="module")
def rt(migrated: TestDatabase) -> Iterator[DurableRuntime]:
    runtime = new_runtime(migrated)
    runtime.start()
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def migrated(database: TestDatabase) -> TestDatabase:
    migrate(database.url)  # core's history and the local runtime's, as dtbase-local does
    return database


def forecast(rt: DurableRuntime, sensors: list[str]) -> dict[str, Any]:
    config = {
        "sensors": {"include_sensors": sensors, "include_measures": [["T", "C"]]},
        "data": {"predict_from_datetime": "2026-11-29T13:42:00Z"},
    }
    return wait_done(rt, rt.start_new("t_arima", None, json.dumps(config)))


def test_an_activity_that_raises_fails_only_its_series(rt: DurableRuntime) -> None:
    # The failures first and last: with task_all, a failed first child that had finished
    # before a later one came back as a result (the SDK's "'Exception' object has no
    # attribute 'get'"), a failed last one failed the instance at once.
    status = forecast(rt, ["raises-a", "ok-1", "error-b", "ok-2", "raises-c"])
    assert status["runtimeStatus"] == "Failed", status["output"]
    message = status["output"]
    assert message.startswith(
        "Orchestrator function 't_arima' failed: 3 of 5 series could not be forecast: "
        "sensor 'raises-a', measure 'T' ('C'): Activity function 't_arima_fit_series' "
        "failed: Unexpected: the fit of raises-a broke; "
        "sensor 'error-b': no training data; "
        "sensor 'raises-c', measure 'T' ('C'): Activity function 't_arima_fit_series' "
        "failed: Unexpected: the fit of raises-c broke. Runs created: [1, 2]"
    ), message
    custom = status["customStatus"]
    assert (custom["stage"], custom["done"], custom["total"], custom["failed"]) == (
        "failed",
        5,
        5,
        3,
    )
    assert [(s["sensor"], s.get("run_id"), "error" in s) for s in custom["series"]] == [
        ("raises-a", None, True),
        ("ok-1", 1, False),
        ("error-b", None, True),
        ("ok-2", 2, False),
        ("raises-c", None, True),
    ]
    assert custom["series"][1]["fallback"] is None
    # Every activity ran once: the failures did not stop the others.
    events = [e["EventType"] for e in status["historyEvents"]]
    assert (events.count("TaskCompleted"), events.count("TaskFailed")) == (4, 2)  # set-up, 5 fits


def test_only_raising_activities(rt: DurableRuntime) -> None:
    status = forecast(rt, ["raises-a", "raises-b"])
    assert status["runtimeStatus"] == "Failed"
    assert "2 of 2 series could not be forecast" in status["output"]
    assert "Runs created: []" in status["output"]


def test_all_series_forecast(rt: DurableRuntime) -> None:
    status = forecast(rt, ["ok-3", "ok-4"])
    assert status["runtimeStatus"] == "Completed", status["output"]
    assert status["output"]["run_ids"] == [3, 4] and status["output"]["failed"] == 0
    assert status["customStatus"]["series"] == [
        {"sensor": "ok-3", "measure": "T", "units": "C", "run_id": 3, "fallback": None},
        {"sensor": "ok-4", "measure": "T", "units": "C", "run_id": 4, "fallback": None},
    ]


def test_many_outcomes_list_the_notable_ones_first() -> None:
    """The custom status stays small: past LISTED_OUTCOMES series, failures and fallbacks
    are listed before plain forecasts, in configuration order, and the rest counted."""
    results: list[dict[str, Any]] = [
        {"sensor": f"s{i}", "measure": "T", "units": None, "run_id": i, "metrics": {}}
        for i in range(LISTED_OUTCOMES + 10)
    ]
    results[7] = {"sensor": "s7", "measure": "T", "units": None, "error": "x" * 1000}
    results[-1]["metrics"] = {"fallback": "simpler order"}
    listed = outcomes(results)
    assert listed["omitted"] == 10
    names = [e["sensor"] for e in listed["series"]]
    assert len(names) == LISTED_OUTCOMES and names == sorted(names, key=lambda n: int(n[1:]))
    assert "s7" in names and f"s{LISTED_OUTCOMES + 9}" in names
    assert len(listed["series"][7]["error"]) == 200
