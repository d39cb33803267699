"""The Citus step of `dtbase-migrate` (dtbase_core/migrations/citus.py): on a Citus
coordinator (DT_TEST_DATABASE_URL naming one: README, Citus) readings and rollups are
hash-distributed on sensor_id and colocated, the sensor catalogue is made of reference
tables and every other core table stays on the coordinator; on plain PostgreSQL the step
does nothing. Each test checks whichever of the two
the suite runs against."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from dtbase_core.migrations import citus, upgrade
from dtbase_core.orm import Base
from dtbase_core.shards import has_citus
from tests.support import TestDatabase


def _placements(conn: sa.Connection) -> dict[str, tuple[str, int, str]]:
    """Each placed table: (kind, colocation group, distribution column)."""
    rows = conn.execute(
        sa.text(
            "select table_name::text, citus_table_type, colocation_id, distribution_column "
            "from citus_tables"
        )
    )
    return {name: (kind, group, column) for name, kind, group, column in rows}


def test_migrations_place_every_core_table(database: TestDatabase) -> None:
    upgrade(database.url)
    with database.engine.connect() as conn:
        assert citus.plan(conn) == []
        if database.citus_workers is None:
            assert not has_citus(conn)
            return
        placed = _placements(conn)
    sharded = citus.distributed_tables()
    assert {placed[t][0] for t in sharded} == {"distributed"}
    assert {placed[t][2] for t in sharded} == {"sensor_id"}
    assert len({placed[t][1] for t in sharded}) == 1, "readings and rollups are colocated"
    catalogue = set(citus.REFERENCE_TABLES)
    assert {t: placed[t][0] for t in catalogue} == dict.fromkeys(catalogue, "reference")
    others = {t.name for t in Base.metadata.sorted_tables} - set(sharded) - catalogue
    assert {t: placed[t][0] for t in others} == dict.fromkeys(others, "local")


def test_readings_written_before_citus_are_distributed_by_the_next_migration(
    database: TestDatabase,
) -> None:
    db = database.beside(join_citus=False)
    try:
        upgrade(db.url)
        at = datetime(2026, 1, 1, tzinfo=UTC)
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "insert into sensor_float_reading (sensor_id, measure_id, timestamp, value) "
                    "select s, 1, :at, s from generate_series(1, 50) s"
                ),
                {"at": at},
            )
        if database.citus_workers is not None:
            db.join_citus_cluster()
            with db.engine.connect() as conn:
                assert {s.table for s in citus.plan(conn)} >= set(citus.distributed_tables())
        upgrade(db.url)
        with db.engine.connect() as conn:
            assert citus.plan(conn) == []
            total = conn.scalar(sa.text("select sum(value) from sensor_float_reading"))
            assert total == sum(range(1, 51))
            if database.citus_workers is not None:
                assert _placements(conn)["sensor_float_reading"][0] == "distributed"
                shards = conn.scalar(
                    sa.text(
                        "select count(distinct nodeport) from citus_shards "
                        "where table_name = 'sensor_float_reading'::regclass"
                    )
                )
                assert shards == len(database.citus_workers)
    finally:
        db.close()
