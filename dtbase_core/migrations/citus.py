"""The Citus step of every migration run: a no-op on plain PostgreSQL.

On a Citus coordinator (or an Azure Database for PostgreSQL elastic cluster) the readings
and their rollups are hash-distributed on `sensor_id` and colocated, so everything about one
sensor (its writes with their rollups, its week of readings, its latest reading) runs on
one node; every other core table becomes a reference table, a copy on every node, so the
readings' joins with sensors and measures run beside them. The step runs after the
revisions, in their transaction, and only touches tables not yet in Citus's metadata: a
database that gains the extension later is distributed by its next `dtbase-migrate`, and
tables that later revisions add join in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from dtbase_core.shards import has_citus

DISTRIBUTION_COLUMN = "sensor_id"


@dataclass(frozen=True)
class Placement:
    table: str
    kind: str  # "distributed" or "reference"


def distributed_tables() -> list[str]:
    """The readings and rollups; the first is the one the others are colocated with."""
    from dtbase_core.orm import reading_rollup, reading_rollup_daily, reading_tables

    return [t.name for t in (*reading_tables.values(), reading_rollup, reading_rollup_daily)]


def plan(connection: sa.Connection) -> list[Placement]:
    """What `distribute` would do here: core tables not yet in Citus's metadata, parents
    before the tables whose foreign keys point at them (Citus wants them in that order)."""
    from dtbase_core.orm import Base

    if not has_citus(connection):
        return []
    placed = set(
        connection.scalars(sa.text("select logicalrelid::regclass::text from pg_dist_partition"))
    )
    existing = set(sa.inspect(connection).get_table_names())
    sharded = set(distributed_tables())
    anchor = distributed_tables()[0]
    steps = [
        Placement(t.name, "distributed" if t.name in sharded else "reference")
        for t in Base.metadata.sorted_tables
        if t.name in existing and t.name not in placed
    ]
    # Reference tables first, in that order; then the anchor the others colocate with.
    return sorted(steps, key=lambda s: (s.kind == "distributed", s.table != anchor))


def distribute(connection: sa.Connection) -> list[Placement]:
    """Place every core table not yet placed; returns what it placed."""
    steps = plan(connection)
    if not steps:
        return []
    # Citus creates shards over several connections per node unless told otherwise, and
    # those cannot see this transaction's earlier DDL (the revisions just run).
    connection.execute(sa.text("set local citus.multi_shard_modify_mode to 'sequential'"))
    anchor = distributed_tables()[0]
    for step in steps:
        if step.kind == "reference":
            connection.execute(sa.text("select create_reference_table(:t)"), {"t": step.table})
        else:
            colocate = "default" if step.table == anchor else anchor
            connection.execute(
                sa.text("select create_distributed_table(:t, :c, colocate_with => :w)"),
                {"t": step.table, "c": DISTRIBUTION_COLUMN, "w": colocate},
            )
        # Rows already there were copied to the nodes; the coordinator's copy is dead.
        connection.execute(
            sa.text("select truncate_local_data_after_distributing_table(:t)"), {"t": step.table}
        )
    return steps
