"""dtbase_core.alerts against the database, with an injected clock: each rule kind firing
and resolving, hysteresis, for_seconds, type scope, silence, acknowledgement, one
notification per transition with two evaluators at once, and the backtest."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import models, readings, sensors
from dtbase_core.alerts import backtest, evaluator, lifecycle, rules
from dtbase_core.errors import Conflict, Invalid, NotFound
from dtbase_core.migrations import upgrade
from dtbase_core.orm import Alert, AlertSeries, AlertTick, AlertTransition
from dtbase_core.orm.notifications import NotificationChannel, NotificationDelivery
from dtbase_core.schemas.models import ProductIn, SensorMeasureRef
from tests import support

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MEASURES = [
    {"name": "temperature", "units": "C", "datatype": "float"},
    {"name": "status", "units": None, "datatype": "string"},
]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def migrated(database: support.TestDatabase) -> support.TestDatabase:
    upgrade(database.url)
    return database


@pytest.fixture
def engine(migrated: support.TestDatabase) -> Iterator[sa.Engine]:
    migrated.truncate_all()
    with Session(migrated.engine) as session, session.begin():
        sensors.insert_sensor_type(session, name="thermo", description=None, measures=MEASURES)
        for uid in ("s1", "s2"):
            sensors.insert_sensor(session, type_name="thermo", unique_identifier=uid)
        session.add(NotificationChannel(name="ops", kind="webhook", url="http://127.0.0.1:1/"))
    yield migrated.engine


def add_rule(engine: sa.Engine, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "hot",
        "kind": "threshold",
        "measure_name": "temperature",
        "unique_identifier": "s1",
        "params": {"above": 30},
        "severity": "critical",
        "channels": ["ops"],
        "enabled": True,
        **fields,
    }
    with Session(engine) as session, session.begin():
        return rules.insert_rule(session, body=body, actor="me@example.org", now=T0)


def post(
    engine: sa.Engine, uid: str, points: list[tuple[float, Any]], measure: str = "temperature"
) -> None:
    with Session(engine) as session, session.begin():
        readings.insert_sensor_readings(
            session,
            measure_name=measure,
            unique_identifier=uid,
            readings=[v for _, v in points],
            timestamps=[at(s) for s, _ in points],
        )


def evaluate(engine: sa.Engine, seconds: float) -> list[tuple[str, str | None, str]]:
    """(sensor, from, to) of the transitions an evaluation at T0 + seconds made."""
    with Session(engine) as session, session.begin():
        result = evaluator.evaluate(session, now=at(seconds))
    return [(t["unique_identifier"], t["from_state"], t["to_state"]) for t in result["transitions"]]


def deliveries(engine: sa.Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [
            (d.event["transition"], d.event["alert"]["unique_identifier"])
            for d in session.scalars(
                sa.select(NotificationDelivery).order_by(NotificationDelivery.id)
            )
        ]


def alerts(engine: sa.Engine, **filters: Any) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return lifecycle.list_alerts(session, **filters)


def test_threshold_fires_and_resolves_and_notifies_each_transition(engine: sa.Engine) -> None:
    add_rule(engine)
    post(engine, "s1", [(10, 20.0), (20, 31.5)])
    assert evaluate(engine, 30) == [("s1", None, "firing")]
    assert evaluate(engine, 40) == []  # nothing new: nothing happens
    [alert] = alerts(engine)
    assert (alert["state"], alert["fired_at"], alert["last_value"]) == ("firing", at(20), 31.5)
    assert alert["message"] == "31.5 above 30"
    post(engine, "s1", [(50, 29.0)])
    assert evaluate(engine, 60) == [("s1", "firing", "resolved")]
    [alert] = alerts(engine)
    assert (alert["state"], alert["resolved_at"]) == ("resolved", at(50))
    assert deliveries(engine) == [("firing", "s1"), ("resolved", "s1")]


def test_below_and_band(engine: sa.Engine) -> None:
    add_rule(engine, name="band", params={"above": 30, "below": 10})
    post(engine, "s1", [(10, 5.0), (20, 15.0), (30, 35.0)])
    assert evaluate(engine, 40) == [
        ("s1", None, "firing"),
        ("s1", "firing", "resolved"),
        ("s1", None, "firing"),
    ]
    assert [a["message"] for a in alerts(engine)] == ["35 above 30", "back to 15"]


def test_hysteresis_clears_only_past_the_clear_level(engine: sa.Engine) -> None:
    add_rule(engine, params={"above": 30, "clear_above": 25})
    post(engine, "s1", [(10, 31.0)])
    assert evaluate(engine, 15) == [("s1", None, "firing")]
    post(engine, "s1", [(20, 28.0), (30, 29.9)])  # below the trigger, above the clear level
    assert evaluate(engine, 35) == []
    post(engine, "s1", [(40, 31.0)])  # firing already: no second alert
    assert evaluate(engine, 45) == []
    post(engine, "s1", [(50, 24.0)])
    assert evaluate(engine, 55) == [("s1", "firing", "resolved")]
    assert len(alerts(engine)) == 1


def test_for_seconds_pending_then_firing(engine: sa.Engine) -> None:
    add_rule(engine, params={"above": 30, "for_seconds": 60})
    post(engine, "s1", [(0, 31.0), (30, 32.0)])
    assert evaluate(engine, 40) == [("s1", None, "pending")]
    assert alerts(engine, state="pending")[0]["started_at"] == at(0)
    # No reading since: time alone makes it fire once for_seconds have passed.
    assert evaluate(engine, 59) == []
    assert evaluate(engine, 61) == [("s1", "pending", "firing")]
    [alert] = alerts(engine)
    assert (alert["state"], alert["started_at"], alert["fired_at"]) == ("firing", at(0), at(60))
    # Pending notifies no one; firing does.
    assert deliveries(engine) == [("firing", "s1")]


def test_a_pending_alert_that_clears_never_fires(engine: sa.Engine) -> None:
    add_rule(engine, params={"above": 30, "for_seconds": 60})
    post(engine, "s1", [(0, 31.0), (30, 20.0), (70, 20.0)])
    assert evaluate(engine, 80) == [("s1", None, "pending"), ("s1", "pending", "resolved")]
    [alert] = alerts(engine)
    assert (alert["state"], alert["fired_at"]) == ("resolved", None)
    assert deliveries(engine) == []


def test_no_data_fires_after_silence_and_resolves_on_a_reading(engine: sa.Engine) -> None:
    add_rule(engine, name="quiet", kind="no_data", params={"no_data_seconds": 300})
    post(engine, "s1", [(0, 20.0)])
    assert evaluate(engine, 100) == []
    assert evaluate(engine, 299) == []
    assert evaluate(engine, 301) == [("s1", None, "firing")]
    [alert] = alerts(engine)
    assert (alert["fired_at"], alert["message"]) == (at(300), "no reading for 300 s")
    post(engine, "s1", [(400, 21.0)])
    assert evaluate(engine, 410) == [("s1", "firing", "resolved")]


def test_no_data_watches_string_measures_and_sensors_that_never_spoke(engine: sa.Engine) -> None:
    add_rule(
        engine,
        name="quiet",
        kind="no_data",
        measure_name="status",
        type_name="thermo",
        unique_identifier=None,
        params={"no_data_seconds": 60},
    )
    assert evaluate(engine, 0) == []  # watched from now on
    post(engine, "s1", [(30, "ok"), (90, "ok")], measure="status")
    assert evaluate(engine, 100) == [("s2", None, "firing")]


def test_rate_of_change(engine: sa.Engine) -> None:
    add_rule(engine, name="jump", kind="rate_of_change", params={"max_change_per_hour": 10})
    post(engine, "s1", [(0, 20.0), (360, 20.5)])  # 5 per hour
    assert evaluate(engine, 400) == []
    post(engine, "s1", [(720, 22.5)])  # 20 per hour
    assert evaluate(engine, 790) == [("s1", None, "firing")]
    post(engine, "s1", [(1080, 22.6)])
    assert evaluate(engine, 1100) == [("s1", "firing", "resolved")]


def forecast(
    engine: sa.Engine, created: datetime, start: float, lower: float, upper: float
) -> None:
    with Session(engine) as session, session.begin():
        if not models.list_models(session):  # the model and its measures, once
            models.insert_model(session, name="arima")
            for name in ("Lower Bound temperature", "Upper Bound temperature", "Mean temperature"):
                models.insert_model_measure(session, name=name, units="C", datatype="float")
        times = [at(start + 600 * i) for i in range(7)]
        models.insert_model_run(
            session,
            model_name="arima",
            scenario_description="default",
            create_scenario=True,
            time_created=created,
            sensor_unique_id="s1",
            sensor_measure=SensorMeasureRef(name="temperature", units="C"),
            measures_and_values=[
                ProductIn(measure_name=name, values=[value] * 7, timestamps=times)
                for name, value in (
                    ("Lower Bound temperature", lower),
                    ("Upper Bound temperature", upper),
                    ("Mean temperature", (lower + upper) / 2),
                )
            ],
        )


def test_forecast_deviation_after_consecutive_points(engine: sa.Engine) -> None:
    forecast(engine, at(-60), 0, 18.0, 22.0)
    add_rule(engine, name="off", kind="forecast_deviation", params={"consecutive_points": 3})
    post(engine, "s1", [(60, 25.0), (120, 26.0), (180, 20.0), (240, 25.0), (300, 25.0)])
    assert evaluate(engine, 310) == []  # two outside, one inside, two outside
    post(engine, "s1", [(360, 16.0)])
    assert evaluate(engine, 370) == [("s1", None, "firing")]
    post(engine, "s1", [(420, 21.0)])
    assert evaluate(engine, 430) == [("s1", "firing", "resolved")]
    # Past the forecast's last instant nothing is judged.
    post(engine, "s1", [(4000, 99.0), (4100, 99.0), (4200, 99.0), (4300, 99.0)])
    assert evaluate(engine, 4400) == []


def test_a_type_scoped_rule_covers_a_sensor_added_later(engine: sa.Engine) -> None:
    add_rule(engine, unique_identifier=None, type_name="thermo")
    post(engine, "s2", [(10, 40.0)])
    assert evaluate(engine, 20) == [("s2", None, "firing")]
    with Session(engine) as session, session.begin():
        sensors.insert_sensor(session, type_name="thermo", unique_identifier="s3")
    post(engine, "s3", [(30, 41.0)])
    assert evaluate(engine, 40) == [("s3", None, "firing")]
    assert sorted(a["unique_identifier"] for a in alerts(engine, state="firing")) == ["s2", "s3"]


def test_silence_stores_transitions_but_notifies_nobody(engine: sa.Engine) -> None:
    add_rule(engine)
    with Session(engine) as session, session.begin():
        rule = rules.silence_rule(session, name="hot", until=at(100), now=at(0))
    assert rule["silenced_until"] == at(100)
    post(engine, "s1", [(10, 35.0), (20, 20.0)])
    assert evaluate(engine, 30) == [("s1", None, "firing"), ("s1", "firing", "resolved")]
    assert deliveries(engine) == []
    with Session(engine) as session:
        notified = session.scalars(sa.select(AlertTransition.notified)).all()
    assert notified == [False, False]
    post(engine, "s1", [(110, 35.0)])  # the silence is over
    assert evaluate(engine, 120) == [("s1", None, "firing")]
    assert deliveries(engine) == [("firing", "s1")]


def test_acknowledge_a_firing_alert(engine: sa.Engine) -> None:
    add_rule(engine)
    post(engine, "s1", [(10, 35.0)])
    evaluate(engine, 20)
    [alert] = alerts(engine)
    with Session(engine) as session, session.begin():
        acked = lifecycle.acknowledge(
            session, alert_id=alert["id"], actor="ann@example.org", comment="on it", now=at(30)
        )
    assert (acked["state"], acked["acknowledged_by"], acked["comment"]) == (
        "acknowledged",
        "ann@example.org",
        "on it",
    )
    with Session(engine) as session, session.begin(), pytest.raises(Conflict):
        lifecycle.acknowledge(session, alert_id=alert["id"], actor="x", comment=None, now=at(31))
    with Session(engine) as session, session.begin(), pytest.raises(NotFound):
        lifecycle.acknowledge(session, alert_id=999, actor="x", comment=None, now=at(31))
    post(engine, "s1", [(40, 20.0)])
    assert evaluate(engine, 50) == [("s1", "acknowledged", "resolved")]
    assert deliveries(engine) == [("firing", "s1"), ("acknowledged", "s1"), ("resolved", "s1")]
    with Session(engine) as session:
        actors = session.execute(
            sa.select(
                AlertTransition.to_state, AlertTransition.actor, AlertTransition.comment
            ).order_by(AlertTransition.id)
        ).all()
    assert [tuple(a) for a in actors] == [
        ("firing", None, None),
        ("acknowledged", "ann@example.org", "on it"),
        ("resolved", None, None),
    ]


def test_two_concurrent_evaluators_make_each_transition_once(engine: sa.Engine) -> None:
    add_rule(engine, unique_identifier=None, type_name="thermo")
    post(engine, "s1", [(10, 35.0)])
    post(engine, "s2", [(10, 36.0)])
    barrier = threading.Barrier(2)
    results: list[list[Any]] = []

    def run() -> None:
        barrier.wait()
        results.append(evaluate(engine, 20))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0, 2]
    assert sorted(deliveries(engine)) == [("firing", "s1"), ("firing", "s2")]
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 2


def test_a_tick_is_evaluated_once(engine: sa.Engine) -> None:
    add_rule(engine)
    post(engine, "s1", [(10, 35.0)])
    with Session(engine) as session, session.begin():
        first = evaluator.evaluate_tick(session, now=at(60.2), occurrence=at(120))
    with Session(engine) as session, session.begin():
        # The same occurrence, fired late by another host.
        second = evaluator.evaluate_tick(session, now=at(62.5), occurrence=at(120))
    assert first is not None and len(first["transitions"]) == 1
    assert second is None
    with Session(engine) as session, session.begin():
        later = evaluator.evaluate_tick(session, now=at(86400 + 200.2), occurrence=None)
    assert later is not None and later["transitions"] == []
    with Session(engine) as session:
        ticks = session.scalars(sa.select(AlertTick.tick).order_by(AlertTick.tick)).all()
    assert ticks == [at(86400 + 200)]  # the second it fired in; the day-old tick is gone


def test_changing_or_deleting_a_rule_resolves_its_alerts_and_keeps_history(
    engine: sa.Engine,
) -> None:
    add_rule(engine)
    post(engine, "s1", [(10, 35.0)])
    evaluate(engine, 20)
    with Session(engine) as session, session.begin():
        rules.update_rule(
            session,
            body={
                "name": "hot",
                "kind": "threshold",
                "measure_name": "temperature",
                "unique_identifier": "s1",
                "params": {"above": 50},
                "channels": ["ops"],
            },
            now=at(30),
        )
    [alert] = alerts(engine)
    assert (alert["state"], alert["message"]) == ("resolved", "rule changed")
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(AlertSeries)) == 0
    assert evaluate(engine, 40) == []  # 35 is not above 50
    with Session(engine) as session, session.begin():
        rules.delete_rule(session, name="hot", now=at(50))
        assert rules.list_rules(session) == []
    assert len(alerts(engine)) == 1


def test_bad_rules_name_the_field(engine: sa.Engine) -> None:
    cases = [
        ({"params": {}}, ("body", "params"), "give above, below or both"),
        ({"params": {"above": 1, "clear_above": 2}}, ("body", "params"), "clear_above"),
        ({"params": {"above": 1, "for_seconds": -1}}, ("body", "params", "for_seconds"), ""),
        ({"params": {"above": 1, "abov": 2}}, ("body", "params", "abov"), ""),
        ({"kind": "no_data", "params": {}}, ("body", "params", "no_data_seconds"), ""),
        ({"channels": ["ops", "nope"]}, ("body", "channels", 1), "nope"),
        ({"type_name": "thermo"}, ("body", "unique_identifier"), "either"),
        ({"measure_name": "status"}, ("body", "measure_name"), "strings"),
    ]
    for fields, loc, words in cases:
        with Session(engine) as session, pytest.raises(Invalid) as caught:
            rules.check_rule(
                session,
                {
                    "name": "r",
                    "kind": "threshold",
                    "measure_name": "temperature",
                    "unique_identifier": "s1",
                    "params": {"above": 1},
                    **fields,
                },
            )
        assert caught.value.loc == loc, fields
        assert words in caught.value.detail, fields
    with Session(engine) as session, pytest.raises(NotFound, match="Sensor 'zz'"):
        rules.check_rule(
            session,
            {
                "name": "r",
                "kind": "threshold",
                "measure_name": "temperature",
                "unique_identifier": "zz",
                "params": {"above": 1},
            },
        )


def test_backtest_intervals_and_writes_nothing(engine: sa.Engine) -> None:
    post(
        engine,
        "s1",
        [(0, 20.0), (60, 31.0), (120, 32.0), (180, 20.0), (240, 33.0), (300, 20.0), (360, 35.0)],
    )
    post(engine, "s2", [(100, 40.0)])
    with Session(engine) as session:
        spec = rules.check_rule(
            session,
            {
                "name": "try",
                "kind": "threshold",
                "measure_name": "temperature",
                "type_name": "thermo",
                "params": {"above": 30},
            },
        )
        before = _row_counts(session)
        result = backtest.backtest(session, spec=spec, dt_from=at(-10), dt_to=at(400))
        assert _row_counts(session) == before
    assert result["fired"] == 4
    assert [(i["unique_identifier"], i["start"], i["end"]) for i in result["intervals"]] == [
        ("s1", at(60), at(180)),
        ("s2", at(100), None),
        ("s1", at(240), at(300)),
        ("s1", at(360), None),
    ]
    assert (result["series"], result["readings"]) == (2, 8)
    with Session(engine) as session:
        short = backtest.backtest(session, spec=spec, dt_from=at(200), dt_to=at(320))
    # The reading before the range (20.0 at 180) is the previous state: ok.
    assert [(i["start"], i["end"]) for i in short["intervals"]] == [(at(240), at(300))]


def _row_counts(session: Session) -> dict[str, int]:
    tables = ("alert", "alert_series", "alert_transition", "alert_tick", "notification_delivery")
    return {t: session.scalar(sa.text(f"select count(*) from {t}")) for t in tables}


def test_deleting_a_sensor_resolves_its_open_alerts(engine: sa.Engine) -> None:
    add_rule(engine, unique_identifier=None, type_name="thermo")
    post(engine, "s1", [(10, 35.0)])
    post(engine, "s2", [(10, 35.0)])
    assert len(evaluate(engine, 20)) == 2
    with Session(engine) as session, session.begin():
        sensors.delete_sensor(session, unique_identifier="s2")
    assert evaluate(engine, 30) == [("s2", "firing", "resolved")]
    states = {(a["unique_identifier"], a["state"], a["message"]) for a in alerts(engine)}
    assert states == {("s1", "firing", "35 above 30"), ("s2", "resolved", "sensor deleted")}
    assert evaluate(engine, 40) == []


def test_a_backlog_is_read_over_several_ticks_without_a_false_silence(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evaluator, "MAX_READINGS_PER_SERIES", 5)
    add_rule(engine, name="quiet", kind="no_data", params={"no_data_seconds": 120})
    post(engine, "s1", [(60 * i, 20.0) for i in range(12)])  # one a minute, no gap
    # At 11:30 the tick reads five readings (to 4:00), then five more, then the rest: the
    # minutes after each batch's last reading are not taken for silence.
    assert [evaluate(engine, 690) for _ in range(3)] == [[], [], []]
    with Session(engine) as session:
        watermark = session.scalar(sa.select(AlertSeries.watermark))
    assert watermark == at(660)
    assert evaluate(engine, 770) == []  # 11:00 + 120 s is 13:00: not yet
    assert evaluate(engine, 790) == [("s1", None, "firing")]


def test_a_measure_name_in_several_units_needs_units(engine: sa.Engine) -> None:
    with Session(engine) as session, session.begin():
        sensors.insert_sensor_type(
            session,
            name="imperial",
            description=None,
            measures=[{"name": "temperature", "units": "F", "datatype": "float"}],
        )
    with Session(engine) as session, pytest.raises(Invalid) as caught:
        rules.check_rule(
            session,
            {
                "name": "r",
                "kind": "threshold",
                "measure_name": "temperature",
                "unique_identifier": "s1",
                "params": {"above": 1},
            },
        )
    assert caught.value.loc == ("body", "units")
    assert "'C', 'F'" in caught.value.detail
    with Session(engine) as session:
        spec = rules.check_rule(
            session,
            {
                "name": "r",
                "kind": "threshold",
                "measure_name": "temperature",
                "units": "C",
                "unique_identifier": "s1",
                "params": {"above": 1},
            },
        )
    assert spec.units == "C"


def test_backtest_over_rollups_matches_the_readings(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A threshold's backtest reads only the hours whose rollup could change something:
    the intervals are those of every reading fed through the machine."""
    import random

    rng = random.Random(7)
    for uid in ("s1", "s2"):
        value, points = 20.0, []
        for minute in range(3 * 24 * 60):  # three days, one reading a minute
            value = 20 + 0.99 * (value - 20) + rng.gauss(0, 0.4)  # about 20 ± 3
            points.append((60 * minute, round(value, 2)))
        post(engine, uid, points)
    rule = {
        "name": "try",
        "kind": "threshold",
        "measure_name": "temperature",
        "type_name": "thermo",
    }
    fed: list[int] = []
    real = backtest.data.readings_in_hours
    monkeypatch.setattr(
        backtest.data,
        "readings_in_hours",
        lambda *a, **k: fed.append(sum(map(len, (found := real(*a, **k)).values()))) or found,
    )
    # With the share of the readings each reads at most (what this data gives, rounded up).
    for params, share in (
        ({"above": 24}, 0.3),
        ({"above": 24, "clear_above": 22, "for_seconds": 600}, 0.7),
        ({"above": 25, "below": 15, "clear_above": 24, "clear_below": 16}, 0.45),
    ):
        with Session(engine) as session:
            spec = rules.check_rule(session, {**rule, "params": params})
            window = {"dt_from": at(1234), "dt_to": at(3 * 86400 - 4321)}
            fast = backtest.backtest(session, spec=spec, **window)
            with monkeypatch.context() as raw:
                raw.setattr(backtest, "NUMERIC", ())  # no rollups: every reading
                slow = backtest.backtest(session, spec=spec, **window)
        assert fast == slow, params
        assert fast["fired"] > 0, params
        assert fed[-1] < share * fast["readings"], (params, fed[-1], fast["readings"])


def test_backtest_of_a_forecast_rule_uses_the_runs_known_at_each_reading(
    engine: sa.Engine,
) -> None:
    # A first run (created at -60 s) expects 18..22 from 0 s to 3,600 s; a second one,
    # created at 1,800 s, expects 28..32 over the same span.
    forecast(engine, at(-60), 0, 18.0, 22.0)
    forecast(engine, at(1800), 0, 28.0, 32.0)
    post(engine, "s1", [(600 + 60 * i, 30.0) for i in range(30)])  # 600 s .. 2,340 s
    with Session(engine) as session:
        result = backtest.backtest_rule(
            session,
            body={
                "name": "off",
                "kind": "forecast_deviation",
                "measure_name": "temperature",
                "unique_identifier": "s1",
                "params": {"consecutive_points": 3},
            },
            dt_from=at(0),
            dt_to=at(3000),
        )
    # 30 is outside the first run's bounds until the second run exists, then inside them.
    assert [(i["start"], i["end"]) for i in result["intervals"]] == [(at(720), at(1800))]


def test_the_last_instants_of_year_9999_are_no_error(engine: sa.Engine) -> None:
    end = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        readings.insert_sensor_readings(
            session,
            measure_name="temperature",
            unique_identifier="s1",
            readings=[35.0, 36.0],
            timestamps=[end - timedelta(seconds=30), end],
        )
    cases = [
        ("threshold", {"above": 30, "for_seconds": 600}, 0),  # pending at the end of time
        ("no_data", {"no_data_seconds": 3600}, 1),  # nothing from 21:00 until 23:59:29
        ("rate_of_change", {"max_change_per_hour": 1}, 1),
    ]
    for kind, params, fired in cases:
        with Session(engine) as session:
            result = backtest.backtest_rule(
                session,
                body={
                    "name": "r",
                    "kind": kind,
                    "measure_name": "temperature",
                    "unique_identifier": "s1",
                    "params": params,
                },
                dt_from=end - timedelta(hours=3),
                dt_to=end,
            )
        assert result["fired"] == fired, kind


def _run_together(*work: Any) -> list[Any]:
    """Run the callables at once, each in its own thread; their results or exceptions."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_acknowledging_while_an_evaluation_resolves_keeps_one_story(engine: sa.Engine) -> None:
    add_rule(engine)
    post(engine, "s1", [(10, 35.0)])
    evaluate(engine, 20)
    [alert] = alerts(engine)
    post(engine, "s1", [(30, 20.0)])

    def ack() -> dict[str, Any]:
        with Session(engine) as session, session.begin():
            return lifecycle.acknowledge(
                session, alert_id=alert["id"], actor="ann", comment=None, now=at(40)
            )

    acked, evaluated = _run_together(ack, lambda: evaluate(engine, 40))
    assert not isinstance(evaluated, Exception), evaluated
    with Session(engine) as session:
        chain = session.execute(
            sa.select(AlertTransition.from_state, AlertTransition.to_state).order_by(
                AlertTransition.id
            )
        ).all()
    # Whichever went first, each transition starts where the previous one ended.
    if isinstance(acked, Conflict):  # resolved first: nothing left to acknowledge
        assert [tuple(c) for c in chain] == [(None, "firing"), ("firing", "resolved")]
    else:
        assert [tuple(c) for c in chain] == [
            (None, "firing"),
            ("firing", "acknowledged"),
            ("acknowledged", "resolved"),
        ]
    assert alerts(engine)[0]["state"] == "resolved"


def test_deleting_a_rule_while_it_is_evaluated(engine: sa.Engine) -> None:
    add_rule(engine, unique_identifier=None, type_name="thermo")
    post(engine, "s1", [(10, 35.0)])
    post(engine, "s2", [(10, 36.0)])

    def delete() -> None:
        with Session(engine) as session, session.begin():
            rules.delete_rule(session, name="hot", now=at(20))

    results = _run_together(delete, lambda: evaluate(engine, 20))
    assert not any(isinstance(r, Exception) for r in results), results
    # Deleted first: nothing was evaluated; evaluated first: its alerts were then resolved.
    assert all(a["state"] == "resolved" for a in alerts(engine))
    assert len(deliveries(engine)) in (0, 4)
