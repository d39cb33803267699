"""The outbox's enqueue, against the database: rows in the caller's transaction only."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core.migrations import upgrade
from dtbase_core.notifications.outbox import channel_names_missing, enqueue
from dtbase_core.orm.notifications import NotificationChannel, NotificationDelivery
from tests import support

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVENT = {
    "alert": {"id": 7, "state": "firing"},
    "rule": {"name": "too-hot"},
    "transition": "firing",
    "at": T0.isoformat(),
}


@pytest.fixture(scope="module")
def migrated(database: support.TestDatabase) -> support.TestDatabase:
    upgrade(database.url)
    return database


@pytest.fixture
def engine(migrated: support.TestDatabase) -> Iterator[sa.Engine]:
    migrated.truncate_all()
    with Session(migrated.engine) as session, session.begin():
        session.add_all(
            [
                NotificationChannel(name="ops", kind="webhook", url="http://127.0.0.1:1/"),
                NotificationChannel(name="mail", kind="email", recipients=["a@example.org"]),
            ]
        )
    yield migrated.engine


def _deliveries(engine: sa.Engine) -> list[tuple[str, str, int, datetime, object]]:
    with Session(engine) as session:
        rows = session.scalars(sa.select(NotificationDelivery).order_by(NotificationDelivery.id))
        return [(d.channel_name, d.status, d.attempts, d.next_attempt_at, d.event) for d in rows]


def test_enqueue_writes_one_pending_delivery_per_channel_on_commit(engine: sa.Engine) -> None:
    with Session(engine) as session, session.begin():
        ids = enqueue(session, channel_names=["ops", "mail", "ops"], event=EVENT, now=T0)
        assert len(ids) == 2
        # Not committed yet: another connection sees nothing.
        assert _deliveries(engine) == []
    assert _deliveries(engine) == [
        ("ops", "pending", 0, T0, EVENT),
        ("mail", "pending", 0, T0, EVENT),
    ]
    with Session(engine) as session:
        assert sorted(session.scalars(sa.select(NotificationDelivery.id))) == sorted(ids)


def test_a_rolled_back_transaction_leaves_no_delivery(engine: sa.Engine) -> None:
    with Session(engine) as session:
        session.begin()
        assert enqueue(session, channel_names=["ops"], event=EVENT, now=T0)
        session.rollback()
    assert _deliveries(engine) == []


def test_an_unknown_channel_is_skipped_with_a_warning(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), Session(engine) as session, session.begin():
        ids = enqueue(session, channel_names=["gone", "ops"], event=EVENT, now=T0)
    assert len(ids) == 1
    assert [row[0] for row in _deliveries(engine)] == ["ops"]
    assert "'gone'" in caplog.text


def test_datetimes_in_an_event_are_stored_as_iso_8601(engine: sa.Engine) -> None:
    event = {**EVENT, "at": T0, "alert": {"started_at": T0, "value": 1.5}}
    with Session(engine) as session, session.begin():
        enqueue(session, channel_names=["ops"], event=event, now=T0)
    [(_, _, _, _, stored)] = _deliveries(engine)
    assert stored == {
        **EVENT,
        "at": "2026-03-01T12:00:00+00:00",
        "alert": {"started_at": "2026-03-01T12:00:00+00:00", "value": 1.5},
    }


def test_no_channels_no_rows(engine: sa.Engine) -> None:
    with Session(engine) as session, session.begin():
        assert enqueue(session, channel_names=[], event=EVENT, now=T0) == []
    assert _deliveries(engine) == []


def test_channel_names_missing(engine: sa.Engine) -> None:
    with Session(engine) as session:
        assert channel_names_missing(session, ["ops", "x", "mail", "y", "x"]) == ["x", "y"]
        assert channel_names_missing(session, ["ops"]) == []
        assert channel_names_missing(session, []) == []


def test_deleting_a_channel_keeps_its_deliveries(engine: sa.Engine) -> None:
    with Session(engine) as session, session.begin():
        enqueue(session, channel_names=["ops"], event=EVENT, now=T0)
    with Session(engine) as session, session.begin():
        session.execute(sa.delete(NotificationChannel).where(NotificationChannel.name == "ops"))
    with Session(engine) as session:
        delivery = session.scalars(sa.select(NotificationDelivery)).one()
        assert (delivery.channel_id, delivery.channel_name) == (None, "ops")
