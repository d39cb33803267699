"""dtbase_core.assets and dtbase_core.annotations against the database directly: the
tree and its moves, attachments and their history, annotation windows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import annotation, assets, sensors
from dtbase_core.errors import AlreadyExists, Conflict, Invalid, NotFound
from dtbase_core.migrations import upgrade
from tests import support


def t(hour: int) -> datetime:
    return datetime(2026, 1, 1, hour, tzinfo=UTC)


@pytest.fixture(scope="module")
def migrated(database: support.TestDatabase) -> support.TestDatabase:
    upgrade(database.url)
    return database


@pytest.fixture
def session(migrated: support.TestDatabase) -> Iterator[Session]:
    """A site with two buildings, a room in the first, and two sensors; rolled back."""
    migrated.truncate_all()
    with Session(migrated.engine) as session:
        assets.insert_asset_type(session, name="Site")
        assets.insert_asset_type(session, name="Building", brick_class="brick:Building")
        assets.insert_asset_type(session, name="Room", brick_class="brick:Room")
        assets.insert_asset(session, name="campus", type_name="Site")
        assets.insert_asset(session, name="b1", type_name="Building", parent="campus")
        assets.insert_asset(session, name="b2", type_name="Building", parent="campus")
        assets.insert_asset(session, name="r1", type_name="Room", parent="b1")
        sensors.insert_sensor_type(session, name="thermo", description=None, measures=[])
        sensors.insert_sensor(session, type_name="thermo", unique_identifier="s1")
        sensors.insert_sensor(session, type_name="thermo", unique_identifier="s2")
        yield session
        session.rollback()


def names(nodes: list[dict]) -> list:
    return [[n["name"], names(n["children"])] if n["children"] else n["name"] for n in nodes]


def test_types_and_tree(session: Session) -> None:
    assert assets.list_asset_types(session)[1] == {
        "name": "Building",
        "brick_class": "brick:Building",
    }
    with pytest.raises(AlreadyExists):
        assets.insert_asset_type(session, name="Room")
    with pytest.raises(Conflict, match="'r1'"):
        assets.delete_asset_type(session, name="Room")
    with pytest.raises(NotFound, match="Parent asset 'nowhere'"):
        assets.insert_asset(session, name="x", type_name="Room", parent="nowhere")
    with pytest.raises(NotFound, match="Asset type 'Lab'"):
        assets.insert_asset(session, name="x", type_name="Lab")
    with pytest.raises(AlreadyExists):
        assets.insert_asset(session, name="b1", type_name="Room")
    assert names(assets.asset_tree(session)) == [["campus", [["b1", ["r1"]], "b2"]]]
    assert names(assets.asset_tree(session, root="b1")) == [["b1", ["r1"]]]
    children = assets.list_assets(session, parent="campus")
    assert [a["name"] for a in children] == ["b1", "b2"]
    assert children[0] == {
        "name": "b1",
        "type_name": "Building",
        "brick_class": "brick:Building",
        "parent": "campus",
        "description": None,
    }
    assert [a["name"] for a in assets.list_assets(session, type_name="Building")] == ["b1", "b2"]


def test_moves_refuse_cycles_and_keep_history(session: Session) -> None:
    with pytest.raises(Conflict, match="under itself"):
        assets.move_asset(session, name="b1", parent="b1")
    with pytest.raises(Conflict, match="'r1', which is below it"):
        assets.move_asset(session, name="campus", parent="r1")
    assets.move_asset(session, name="r1", parent="b2")
    assets.move_asset(session, name="r1", parent=None)
    assert names(assets.asset_tree(session)) == [["campus", ["b1", "b2"]], "r1"]
    history = assets.list_asset_moves(session, name="r1")
    assert [h["parent"] for h in history] == [None, "b2", "b1"]


def test_attachments_history_and_recursive_listing(session: Session) -> None:
    assets.attach_sensor(session, asset="r1", unique_identifier="s1", installation_datetime=t(1))
    assets.attach_sensor(session, asset="b2", unique_identifier="s2", installation_datetime=t(1))
    assert [s["unique_identifier"] for s in assets.list_asset_sensors(session, asset="b1")] == []
    deep = assets.list_asset_sensors(session, asset="campus", recursive=True)
    assert [(s["unique_identifier"], s["asset"]) for s in deep] == [("s1", "r1"), ("s2", "b2")]
    # Moved on: the latest attachment is the current one, the earlier one stays in history.
    assets.attach_sensor(session, asset="b1", unique_identifier="s1", installation_datetime=t(2))
    assert [s["unique_identifier"] for s in assets.list_asset_sensors(session, asset="r1")] == []
    assert [
        s["asset"] for s in assets.list_sensor_attachments(session, unique_identifier="s1")
    ] == [
        "b1",
        "r1",
    ]
    with pytest.raises(Conflict):
        assets.attach_sensor(
            session, asset="r1", unique_identifier="s1", installation_datetime=t(2)
        )
    with pytest.raises(Conflict, match=r"children .*'b1', 'b2'"):
        assets.delete_asset(session, name="campus")
    assets.delete_asset(session, name="r1")  # nothing attached now: its history goes with it
    assert [
        a["asset"] for a in assets.list_sensor_attachments(session, unique_identifier="s1")
    ] == ["b1"]
    with pytest.raises(Conflict, match=r"sensors attached .*'s1'"):
        assets.delete_asset(session, name="b1")
    assets.attach_sensor(session, asset=None, unique_identifier="s1", installation_datetime=t(3))
    assets.delete_asset(session, name="b1")
    assert names(assets.asset_tree(session)) == [["campus", ["b2"]]]


def test_annotation_windows(session: Session) -> None:
    assets.attach_sensor(session, asset="b1", unique_identifier="s1", installation_datetime=t(0))
    on_asset = annotation.insert_annotation(
        session, asset="b1", dt_from=t(2), dt_to=t(4), text="works", author="a@x"
    )
    on_sensor = annotation.insert_annotation(
        session, unique_identifier="s1", dt_from=t(5), text="spike", tags=["qa"], author="a@x"
    )
    with pytest.raises(Invalid, match="not both"):
        annotation.insert_annotation(
            session, asset="b1", unique_identifier="s1", dt_from=t(1), text="x", author="a"
        )
    with pytest.raises(Invalid, match="dt_to"):
        annotation.insert_annotation(
            session, asset="b1", dt_from=t(2), dt_to=t(1), text="x", author="a"
        )

    def ids(**kwargs: object) -> list[int]:
        return [a["id"] for a in annotation.list_annotations(session, **kwargs)]  # type: ignore[arg-type]

    assert ids(asset="b1", dt_from=t(3), dt_to=t(6)) == [on_asset, on_sensor]
    assert ids(asset="b1", dt_from=t(3), dt_to=t(6), include_related=False) == [on_asset]
    assert ids(unique_identifier="s1", dt_from=t(0), dt_to=t(9)) == [on_asset, on_sensor]
    assert ids(dt_from=t(4), dt_to=t(4)) == [on_asset]  # the ends count
    assert ids(dt_from=t(5), dt_to=t(5)) == [on_sensor]
    assert ids(dt_from=t(6), dt_to=t(9)) == []
    assert ids(asset="b2", dt_from=t(0), dt_to=t(9)) == []
    annotation.delete_annotation(session, id=on_asset)
    with pytest.raises(NotFound):
        annotation.delete_annotation(session, id=on_asset)


def test_concurrent_moves_cannot_make_a_cycle(migrated: support.TestDatabase) -> None:
    """b1 under b2 in one transaction, b2 under b1 in another: the second waits for the
    tree's lock, then sees the first move and refuses."""
    migrated.truncate_all()
    with Session(migrated.engine) as session, session.begin():
        assets.insert_asset_type(session, name="Building")
        assets.insert_asset(session, name="b1", type_name="Building")
        assets.insert_asset(session, name="b2", type_name="Building")
    outcome: list[BaseException | None] = []

    def second() -> None:
        try:
            with Session(migrated.engine) as other, other.begin():
                assets.move_asset(other, name="b2", parent="b1")
            outcome.append(None)
        except Conflict as exc:
            outcome.append(exc)

    with Session(migrated.engine) as first:
        assets.move_asset(first, name="b1", parent="b2")
        thread = threading.Thread(target=second)
        thread.start()
        waiting = sa.text(
            "select count(*) from pg_locks where locktype = 'advisory' and not granted"
            " and database = (select oid from pg_database where datname = current_database())"
        )
        with migrated.engine.connect() as probe:
            while not probe.execute(waiting).scalar() and thread.is_alive():
                probe.rollback()  # a fresh snapshot of pg_locks each time
        first.commit()
        thread.join()
    assert isinstance(outcome[0], Conflict)
    with Session(migrated.engine) as session:
        assert names(assets.asset_tree(session)) == [["b2", ["b1"]]]
