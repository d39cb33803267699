"""/alert over real HTTP through the local host (docs/api.md, Alerts): the rule routes,
an alert firing from posted readings and acknowledged by the caller, admin-only
evaluation, the backtest, bad bodies naming the field, and two hosts on one database
evaluating at once with each transition stored and notified once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core.orm.notifications import NotificationChannel, NotificationDelivery
from tests.support import ADMIN_PASSWORD, Api, LocalHost, TestDatabase

RULE = {
    "name": "too-hot",
    "kind": "threshold",
    "measure_name": "temperature",
    "unique_identifier": "t-1",
    "params": {"above": 30, "clear_above": 28},
    "severity": "critical",
    "channels": ["ops"],
    "enabled": True,
}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def setup_twin(admin: Api, db: TestDatabase, sensors: tuple[str, ...] = ("t-1",)) -> None:
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Thermo",
            "measures": [{"name": "temperature", "units": "C", "datatype": "float"}],
        },
        201,
    )
    for uid in sensors:
        admin.ok("/sensor/insert-sensor", {"type_name": "Thermo", "unique_identifier": uid}, 201)
    with Session(db.engine) as session, session.begin():
        session.add(NotificationChannel(name="ops", kind="webhook", url="http://127.0.0.1:1/"))


def post_readings(admin: Api, uid: str, values: list[float], start: datetime) -> None:
    admin.ok(
        "/sensor/insert-sensor-readings",
        {
            "unique_identifier": uid,
            "measure_name": "temperature",
            "readings": values,
            "timestamps": [iso(start + timedelta(seconds=10 * i)) for i in range(len(values))],
        },
        201,
    )


def deliveries(db: TestDatabase) -> list[tuple[str, str]]:
    with Session(db.engine) as session:
        rows = session.scalars(sa.select(NotificationDelivery).order_by(NotificationDelivery.id))
        return [(d.channel_name, d.event["transition"]) for d in rows]


def test_rule_fires_from_posted_readings_and_is_acknowledged(
    admin: Api, clean_db: TestDatabase
) -> None:
    setup_twin(admin, clean_db)
    rule = admin.ok("/alert/insert-alert-rule", RULE, 201)
    assert rule["name"] == "too-hot" and rule["created_by"] == "default_user@localhost"
    assert rule["params"] == {"above": 30, "clear_above": 28, "for_seconds": 0}
    assert [r["name"] for r in admin.get("/alert/list-alert-rules").json()] == ["too-hot"]
    reply = admin.post("/alert/insert-alert-rule", RULE)
    assert reply.status_code == 409

    now = datetime.now(UTC)
    post_readings(admin, "t-1", [25.0, 31.0, 33.0], now - timedelta(minutes=2))
    evaluation = admin.ok("/alert/evaluate-alerts")
    assert evaluation["evaluated"] == 1
    assert [(t["from_state"], t["to_state"], t["value"]) for t in evaluation["transitions"]] == [
        (None, "firing", 31.0)
    ]
    [alert] = admin.ok("/alert/list-alerts", {"state": "firing"})
    assert (alert["rule_name"], alert["unique_identifier"], alert["severity"]) == (
        "too-hot",
        "t-1",
        "critical",
    )
    acked = admin.ok("/alert/acknowledge-alert", {"id": alert["id"], "comment": "fan on"})
    assert (acked["state"], acked["acknowledged_by"], acked["comment"]) == (
        "acknowledged",
        "default_user@localhost",
        "fan on",
    )
    reply = admin.post("/alert/acknowledge-alert", {"id": alert["id"]})
    assert reply.status_code == 409 and "acknowledged" in reply.json()["detail"]
    assert admin.post("/alert/acknowledge-alert", {"id": 999}).status_code == 400

    post_readings(admin, "t-1", [29.0, 27.0], now - timedelta(seconds=30))  # 29: hysteresis
    evaluation = admin.ok("/alert/evaluate-alerts")
    assert [(t["from_state"], t["to_state"], t["value"]) for t in evaluation["transitions"]] == [
        ("acknowledged", "resolved", 27.0)
    ]
    assert admin.ok("/alert/list-alerts", {"state": "firing"}) == []
    [past] = admin.ok("/alert/list-alerts", {"since": iso(now - timedelta(hours=1))})
    assert past["state"] == "resolved"
    assert deliveries(clean_db) == [("ops", "firing"), ("ops", "acknowledged"), ("ops", "resolved")]


def test_silence_update_and_delete(admin: Api, clean_db: TestDatabase) -> None:
    setup_twin(admin, clean_db)
    admin.ok("/alert/insert-alert-rule", RULE, 201)
    until = datetime.now(UTC) + timedelta(hours=1)
    silenced = admin.ok("/alert/silence-alert-rule", {"name": "too-hot", "until": iso(until)})
    assert silenced["silenced_until"] is not None
    post_readings(admin, "t-1", [35.0], datetime.now(UTC) - timedelta(seconds=20))
    [made] = admin.ok("/alert/evaluate-alerts")["transitions"]
    assert (made["to_state"], made["notified"]) == ("firing", False)
    assert deliveries(clean_db) == []
    updated = admin.ok("/alert/update-alert-rule", {**RULE, "params": {"above": 40}})
    assert updated["params"]["above"] == 40 and updated["silenced_until"] is not None
    [alert] = admin.ok("/alert/list-alerts")
    assert (alert["state"], alert["message"]) == ("resolved", "rule changed")
    reply = admin.post("/alert/update-alert-rule", {**RULE, "name": "nope"})
    assert reply.status_code == 400 and "nope" in reply.json()["detail"]
    assert admin.ok("/alert/delete-alert-rule", {"name": "too-hot"}) == {
        "detail": "Alert rule deleted"
    }
    assert admin.get("/alert/list-alert-rules").json() == []
    assert admin.post("/alert/delete-alert-rule", {"name": "too-hot"}).status_code == 400
    assert len(admin.ok("/alert/list-alerts")) == 1  # the history stays


def test_evaluate_alerts_is_for_admins(admin: Api, live_host: LocalHost) -> None:
    admin.ok("/user/create-user", {"email": "plain@example.com", "password": "pw"}, 201)
    plain = Api(live_host.api, "plain@example.com", "pw")
    reply = plain.post("/alert/evaluate-alerts")
    assert (reply.status_code, reply.json()) == (
        403,
        {"detail": "Only an admin can use alert/evaluate-alerts"},
    )
    assert plain.post("/alert/list-alerts").status_code == 200
    plain.close()


def test_bad_bodies_name_the_field(admin: Api, clean_db: TestDatabase) -> None:
    setup_twin(admin, clean_db)
    cases: list[tuple[dict[str, Any], list[Any], str]] = [
        ({"params": {"above": "hot"}}, ["body", "params", "above"], "valid number"),
        ({"params": {"above": 1, "clear_above": 5}}, ["body", "params"], "clear_above"),
        ({"params": {"above": 1, "for_seconds": -5}}, ["body", "params", "for_seconds"], ""),
        ({"kind": "sometimes"}, ["body", "kind"], ""),
        ({"severity": "meh"}, ["body", "severity"], ""),
        ({"channels": ["ops", "pager"]}, ["body", "channels", 1], "pager"),
        ({"unique_identifier": None}, ["body", "unique_identifier"], "type_name"),
        (
            {"kind": "no_data", "params": {"no_data_seconds": 0}},
            ["body", "params", "no_data_seconds"],
            "",
        ),
        ({"kind": "rate_of_change", "params": {}}, ["body", "params", "max_change_per_hour"], ""),
        ({"enabled": "yes"}, ["body", "enabled"], ""),
    ]
    for fields, loc, words in cases:
        reply = admin.post("/alert/insert-alert-rule", {**RULE, **fields})
        assert reply.status_code == 422, (fields, reply.text)
        item = reply.json()["detail"][0]
        assert item["loc"] == loc, (fields, item)
        assert words in item["msg"], (fields, item)
    reply = admin.post("/alert/insert-alert-rule", {**RULE, "unique_identifier": "ghost"})
    assert (reply.status_code, reply.json()) == (400, {"detail": "Sensor 'ghost' does not exist"})
    reply = admin.post("/alert/acknowledge-alert", {"id": "one"})
    assert reply.json()["detail"][0]["loc"] == ["body", "id"]
    reply = admin.post("/alert/silence-alert-rule", {"name": "too-hot", "until": "soon"})
    assert reply.json()["detail"][0]["loc"] == ["body", "until"]
    reply = admin.post("/alert/list-alerts", {"state": "asleep"})
    assert reply.json()["detail"][0]["loc"] == ["body", "state"]
    assert admin.get("/alert/list-alert-rules").json() == []  # nothing was written


def test_backtest_over_http_writes_nothing(admin: Api, clean_db: TestDatabase) -> None:
    setup_twin(admin, clean_db, ("t-1", "t-2"))
    start = datetime(2026, 1, 5, tzinfo=UTC)
    post_readings(admin, "t-1", [20, 31, 32, 20, 20, 35, 20], start)
    post_readings(admin, "t-2", [20, 20, 20, 40], start)
    body = {
        **RULE,
        "unique_identifier": None,
        "type_name": "Thermo",
        "dt_from": iso(start - timedelta(hours=1)),
        "dt_to": iso(start + timedelta(hours=1)),
    }
    del body["name"]  # a backtest needs no name
    result = admin.ok("/alert/backtest-alert-rule", body)
    assert result["fired"] == 3
    assert [(i["unique_identifier"], i["start"], i["end"]) for i in result["intervals"]] == [
        ("t-1", "2026-01-05T00:00:10Z", "2026-01-05T00:00:30Z"),
        ("t-2", "2026-01-05T00:00:30Z", None),
        ("t-1", "2026-01-05T00:00:50Z", "2026-01-05T00:01:00Z"),
    ]
    assert (result["series"], result["readings"]) == (2, 11)
    widest = {**body, "dt_from": "0001-01-01T00:00:00Z", "dt_to": "9999-12-31T23:59:59.999999Z"}
    assert admin.ok("/alert/backtest-alert-rule", widest)["fired"] == 3
    reply = admin.post("/alert/backtest-alert-rule", {**body, "dt_to": body["dt_from"]})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["body", "dt_to"]
    with Session(clean_db.engine) as session:
        for table in ("alert_rule", "alert", "alert_series", "alert_transition"):
            assert session.scalar(sa.text(f"select count(*) from {table}")) == 0, table


def test_two_hosts_evaluating_at_once_notify_each_transition_once(
    admin: Api, clean_db: TestDatabase, host_factory: Callable[..., LocalHost], live_host: LocalHost
) -> None:
    sensors = tuple(f"t-{i}" for i in range(20))
    setup_twin(admin, clean_db, sensors)
    admin.ok(
        "/alert/insert-alert-rule",
        {**RULE, "unique_identifier": None, "type_name": "Thermo"},
        201,
    )
    now = datetime.now(UTC)
    for uid in sensors:
        post_readings(admin, uid, [35.0], now - timedelta(seconds=30))
    other = host_factory()
    clients = [admin, Api(other.api, live_host.admin_email, ADMIN_PASSWORD)]
    barrier = threading.Barrier(len(clients) * 2)
    made: list[int] = []

    def evaluate(api: Api) -> None:
        barrier.wait()
        reply = api.post("/alert/evaluate-alerts")
        assert reply.status_code == 200, reply.text
        made.append(len(reply.json()["transitions"]))

    threads = [threading.Thread(target=evaluate, args=(c,)) for c in clients * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(made) == [0, 0, 0, 20]
    assert deliveries(clean_db) == [("ops", "firing")] * 20
    assert len(admin.ok("/alert/list-alerts", {"state": "firing"})) == 20
    clients[1].close()


def test_the_timer_function_evaluates_each_tick_once(
    admin: Api, clean_db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timer's function, called as the local scheduler (or Azure) calls it."""
    import azure.functions.timer as timer

    from dtbase_core.config import reset_settings
    from dtbase_core.db import dispose_engine
    from function_app.alerts import alert_evaluation_timer

    assert alert_evaluation_timer._function.get_trigger().schedule == "%DT_ALERT_SCHEDULE%"
    setup_twin(admin, clean_db)
    admin.ok("/alert/insert-alert-rule", RULE, 201)
    post_readings(admin, "t-1", [35.0], datetime.now(UTC) - timedelta(seconds=20))
    monkeypatch.setenv("DT_DATABASE_URL", clean_db.url)
    monkeypatch.setenv("DT_JWT_SECRET_KEY", "x" * 40)
    reset_settings()
    dispose_engine()
    # Two hosts firing one occurrence: the schedule's next fire time names it.
    upcoming = {"Next": "2026-03-01T12:01:00+00:00", "Last": None, "LastUpdated": None}
    try:
        alert_evaluation_timer(timer.TimerRequest(past_due=False, schedule_status=upcoming))
        alert_evaluation_timer(timer.TimerRequest(past_due=True, schedule_status=upcoming))
    finally:
        monkeypatch.undo()
        reset_settings()
        dispose_engine()
    with Session(clean_db.engine) as session:
        ticks = session.execute(sa.text("select tick, transitions from alert_tick")).all()
    assert [tuple(t) for t in ticks] == [(datetime(2026, 3, 1, 12, 1, tzinfo=UTC), 1)]
    assert [a["state"] for a in admin.ok("/alert/list-alerts")] == ["firing"]
    assert deliveries(clean_db) == [("ops", "firing")]
