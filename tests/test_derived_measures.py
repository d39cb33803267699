"""Derived measures over real HTTP (docs/api.md, Derived measures): vapour-pressure deficit
from temperature and relative humidity against hand-computed values, read through
sensor-readings, sensor-readings-aggregated, latest-readings, export-readings, an alert
rule and a backtest; only timestamps where every input has a reading; expressions that
are refused; points without a finite value (division by zero, log of zero) left out,
never a 500."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import Api, TestDatabase

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SVP = "0.6108 * exp(17.27 * T / (T + 237.3))"
VPD = {
    "type_name": "Climate",
    "name": "vpd",
    "units": "kPa",
    "expression": f"{SVP} * (1 - RH / 100)",
    "inputs": {"T": "temperature", "RH": "humidity"},
}
# (minute, temperature °C, relative humidity %) and the VPD worked out by hand, in kPa:
# SVP(20) = 0.6108 * e^(345.4 / 257.3) = 0.6108 * e^1.342402 = 0.6108 * 3.82823 = 2.33828,
# so VPD(20, 50) = 2.33828 * 0.5 = 1.16914; SVP(25) = 0.6108 * e^(431.75 / 262.3)
# = 0.6108 * e^1.646016 = 0.6108 * 5.18628 = 3.16778, VPD(25, 60) = 3.16778 * 0.4 = 1.26711;
# SVP(30) = 0.6108 * e^(518.1 / 267.3) = 0.6108 * e^1.938272 = 0.6108 * 6.94673 = 4.24307,
# VPD(30, 80) = 4.24307 * 0.2 = 0.84861; and VPD(10, 100) = SVP(10) * 0 = 0.
HAND_COMPUTED = [(0, 20.0, 50, 1.16914), (1, 25.0, 60, 1.26711), (2, 30.0, 80, 0.84861)]
HAND_COMPUTED.append((3, 10.0, 100, 0.0))


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def at(minute: float) -> str:
    return iso(T0 + timedelta(minutes=minute))


def post(api: Api, measure: str, points: list[tuple[float, float]], uid: str = "c-1") -> None:
    api.ok(
        "/sensor/insert-sensor-readings",
        {
            "unique_identifier": uid,
            "measure_name": measure,
            "readings": [value for _, value in points],
            "timestamps": [at(minute) for minute, _ in points],
        },
        201,
    )


def setup_climate(api: Api) -> None:
    api.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Climate",
            "measures": [
                {"name": "temperature", "units": "C", "datatype": "float"},
                {"name": "humidity", "units": "%", "datatype": "integer"},
                {"name": "status", "units": None, "datatype": "string"},
            ],
        },
        201,
    )
    api.ok("/sensor/insert-sensor", {"type_name": "Climate", "unique_identifier": "c-1"}, 201)
    # Minutes 0-3 have both inputs; temperature alone at 0.5, humidity alone at 4.
    post(api, "temperature", [(m, t) for m, t, _, _ in HAND_COMPUTED] + [(0.5, 22.0)])
    post(api, "humidity", [(m, rh) for m, _, rh, _ in HAND_COMPUTED] + [(4, 40)])


def readings(api: Api, measure: str, dt_from: str = at(-1), dt_to: str = at(10)) -> list[Any]:
    body = {"unique_identifier": "c-1", "measure_name": measure, "dt_from": dt_from, "dt_to": dt_to}
    return api.ok("/sensor/sensor-readings", body)


def test_vpd_matches_hand_computed_values_at_matching_timestamps_only(admin: Api) -> None:
    setup_climate(admin)
    assert admin.ok("/sensor/insert-derived-measure", VPD, 201) == {
        "detail": "Derived measure inserted"
    }
    assert admin.ok("/sensor/list-derived-measures", {"type_name": "Climate"}) == [
        {k: VPD[k] for k in ("type_name", "name", "units", "expression", "inputs")}
    ]
    got = readings(admin, "vpd")
    assert [r["timestamp"] for r in got] == [at(m) for m, _, _, _ in HAND_COMPUTED]
    for reading, (_, _, _, expected) in zip(got, HAND_COMPUTED, strict=True):
        assert reading["value"] == pytest.approx(expected, abs=5e-5)
    # The window bounds are inclusive, as for stored measures.
    assert [r["timestamp"] for r in readings(admin, "vpd", at(1), at(2))] == [at(1), at(2)]

    # Per bucket, aggregated in SQL from the derived values.
    body = {
        "unique_identifier": "c-1",
        "measure_name": "vpd",
        "dt_from": at(0),
        "dt_to": at(10),
        "interval": "2min",
    }
    means = admin.ok("/sensor/sensor-readings-aggregated", {**body, "aggregation": "mean"})
    assert [m["timestamp"] for m in means] == [at(0), at(2)]
    assert means[0]["value"] == pytest.approx((1.16914 + 1.26711) / 2, abs=5e-5)
    assert means[1]["value"] == pytest.approx(0.84861 / 2, abs=5e-5)
    counts = admin.ok("/sensor/sensor-readings-aggregated", {**body, "aggregation": "count"})
    assert [c["value"] for c in counts] == [2, 2]
    hourly = admin.ok(
        "/sensor/sensor-readings-aggregated", {**body, "interval": "1h", "aggregation": "max"}
    )
    assert [h["value"] for h in hourly] == [pytest.approx(1.26711, abs=5e-5)]

    latest = admin.ok("/sensor/latest-readings", {"type_name": "Climate"})
    assert [(r["measure_name"], r["units"], r["timestamp"], r["value"]) for r in latest] == [
        ("temperature", "C", at(3), 10.0),
        ("humidity", "%", at(4), 40),
        ("vpd", "kPa", at(3), 0.0),
    ]

    reply = admin.post(
        "/sensor/export-readings",
        {
            "unique_identifier": "c-1",
            "measure_name": ["vpd", "humidity"],
            "dt_from": at(0),
            "dt_to": at(10),
        },
    )
    assert reply.status_code == 200
    rows = list(csv.reader(io.StringIO(reply.text)))
    vpd_rows = [row for row in rows[1:] if row[1] == "vpd"]
    assert [(row[0], row[2], row[3]) for row in vpd_rows] == [
        ("c-1", "kPa", at(m)) for m, _, _, _ in HAND_COMPUTED
    ]
    assert float(vpd_rows[1][4]) == pytest.approx(1.26711, abs=5e-5)
    assert len(rows) == 1 + 4 + 5  # header, vpd, humidity


def test_writing_to_a_derived_measure_and_bad_definitions_are_refused(admin: Api) -> None:
    setup_climate(admin)
    admin.ok("/sensor/insert-derived-measure", VPD, 201)
    reply = admin.post(
        "/sensor/insert-sensor-readings",
        {
            "unique_identifier": "c-1",
            "measure_name": "vpd",
            "readings": [1.0],
            "timestamps": [at(9)],
        },
    )
    assert reply.status_code == 422 and "derived measure" in reply.text
    assert admin.post("/sensor/insert-derived-measure", VPD).status_code == 409
    cases = [
        ({"name": "temperature"}, "stored measure"),
        ({"type_name": "Nope"}, "does not exist"),
        ({"inputs": {"T": "temperature", "RH": "status"}}, "strings"),
        ({"inputs": {"T": "temperature", "RH": "pressure"}}, "not a measure"),
        ({"inputs": {"T": "temperature"}}, "Unknown name 'RH'"),
        ({"inputs": {"T": "temperature", "RH": "humidity", "x": "humidity"}}, "not used"),
        ({"inputs": {"exp": "temperature"}, "expression": "exp"}, "reserved"),
    ]
    for change, message in cases:
        reply = admin.post("/sensor/insert-derived-measure", {**VPD, "name": "other", **change})
        assert reply.status_code in (400, 422), (change, reply.text)
        assert message in reply.text, (change, reply.text)
    assert [d["name"] for d in admin.ok("/sensor/list-derived-measures", {})] == ["vpd"]
    admin.ok("/sensor/delete-derived-measure", {"type_name": "Climate", "name": "vpd"})
    assert admin.ok("/sensor/list-derived-measures") == []
    assert (
        admin.post(
            "/sensor/delete-derived-measure", {"type_name": "Climate", "name": "vpd"}
        ).status_code
        == 400
    )
    # Gone: the name is unknown again.
    assert (
        admin.post(
            "/sensor/sensor-readings",
            {"unique_identifier": "c-1", "measure_name": "vpd", "dt_from": at(0), "dt_to": at(9)},
        ).status_code
        == 400
    )


MALICIOUS = [
    ("__import__('os').system('true')", "Unknown name '__import__'"),
    ("T.__class__", "Attribute access"),
    ("().__class__.__bases__[0]", "not allowed"),
    ("[T][0]", "not allowed"),
    ("(lambda: T)()", "can be called"),
    ("9**9**9", "power"),
    ("T ** 1000", "larger than"),
    ("open('/etc/passwd')", "Unknown name 'open'"),
    ("T.conjugate()", "can be called"),
    ("T if T else 1", "condition is needed"),
    ("T > 1", "condition, not a number"),
    ("'a'", "Only numbers"),
    ("T; 1", "not valid"),
    ("exp(T, T)", "takes 1 arguments"),
    ("max(T)", "takes 2 to 10"),
    ("1e999 + T", "too large"),
    ("9" * 400 + " * T", "too large"),
    ("T" + " + T" * 300, "at most 500 characters"),
    ("-" * 30 + "T", "deeper"),
]


@pytest.fixture
def climate(admin: Api, clean_db: TestDatabase) -> Api:
    setup_climate(admin)
    return admin


def test_malicious_expressions_are_refused(climate: Api) -> None:
    for expression, message in MALICIOUS:
        body = {**VPD, "name": "evil", "expression": expression, "inputs": {"T": "temperature"}}
        reply = climate.post("/sensor/insert-derived-measure", body)
        assert reply.status_code == 422, (expression, reply.text)
        assert message in reply.text, (expression, reply.text)
    assert climate.ok("/sensor/list-derived-measures") == []


def test_points_without_a_finite_value_are_left_out(climate: Api) -> None:
    # humidity is 100 at minute 3: 1 / (100 - RH) divides by zero there; log(100 - RH) is
    # the log of zero; huge powers overflow. Each leaves the point out, never a 500.
    for name, expression in [
        ("inverse", "1 / (100 - RH)"),
        ("logged", "log(100 - RH)"),
        ("huge", "exp(T * 100) * 1e100"),
        ("rooted", "sqrt(RH - 55)"),
    ]:
        body = {**VPD, "name": name, "expression": expression, "inputs": {"RH": "humidity"}}
        if "T" in expression:
            body["inputs"] = {"T": "temperature"}
        climate.ok("/sensor/insert-derived-measure", body, 201)
    assert [r["timestamp"] for r in readings(climate, "inverse")] == [at(0), at(1), at(2), at(4)]
    assert readings(climate, "inverse")[0]["value"] == pytest.approx(1 / 50)
    assert [r["value"] for r in readings(climate, "logged")] == pytest.approx(
        [math.log(50), math.log(40), math.log(20), math.log(60)]
    )
    # exp(T * 100) overflows a float at every temperature here (exp(1000) and more).
    assert readings(climate, "huge") == []
    assert [r["timestamp"] for r in readings(climate, "rooted")] == [at(1), at(2), at(3)]
    body = {
        "unique_identifier": "c-1",
        "measure_name": "inverse",
        "dt_from": at(0),
        "dt_to": at(10),
        "interval": "1h",
        "aggregation": "sum",
    }
    [total] = climate.ok("/sensor/sensor-readings-aggregated", body)
    assert total["value"] == pytest.approx(1 / 50 + 1 / 40 + 1 / 20 + 1 / 60)


def test_an_alert_rule_fires_on_a_derived_measure(climate: Api) -> None:
    climate.ok("/sensor/insert-derived-measure", VPD, 201)
    rule = {
        "name": "dry-air",
        "kind": "threshold",
        "measure_name": "vpd",
        "type_name": "Climate",
        "params": {"above": 1.2},
        "severity": "warning",
        "channels": [],
        "enabled": True,
    }
    climate.ok("/alert/insert-alert-rule", rule, 201)
    now = datetime.now(UTC).replace(microsecond=0)
    stamps = [iso(now - timedelta(seconds=s)) for s in (50, 40, 30)]
    # VPD 1.169 (below), then 1.267 (above) at the second instant; temperature alone at
    # the third gives no derived reading.
    for measure, values in [("temperature", [20.0, 25.0, 40.0]), ("humidity", [50, 60])]:
        climate.ok(
            "/sensor/insert-sensor-readings",
            {
                "unique_identifier": "c-1",
                "measure_name": measure,
                "readings": values,
                "timestamps": stamps[: len(values)],
            },
            201,
        )
    evaluation = climate.ok("/alert/evaluate-alerts")
    assert [(t["to_state"], t["at"]) for t in evaluation["transitions"]] == [("firing", stamps[1])]
    assert evaluation["transitions"][0]["value"] == pytest.approx(1.26711, abs=5e-5)
    backtest = climate.ok(
        "/alert/backtest-alert-rule",
        {**rule, "dt_from": iso(now - timedelta(minutes=5)), "dt_to": iso(now)},
    )
    assert backtest["fired"] == 1 and backtest["readings"] == 2
