"""The Citus step of every migration run: a no-op on plain PostgreSQL.

On a Citus coordinator (or an Azure Database for PostgreSQL elastic cluster) each core
table gets one of three places:

- the readings and their rollups are hash-distributed on `sensor_id` and colocated, so
  everything about one sensor (a write with its rollups, a week of readings, the latest
  reading) runs on the one node holding it, and a fleet's writes spread over all nodes;
- the sensor catalogue that reads of the readings join (sensors, types, measures) becomes
  reference tables, a copy on every node, so those joins run beside the readings;
- every other table stays on the coordinator as a Citus local table, which behaves as
  plain PostgreSQL does: the queues taken `FOR UPDATE SKIP LOCKED` (notifications,
  schedules) need that, since a reference table locks a row on every node and waits where
  it should skip, and the audit and the other coordinator-only rows skip the two-phase
  commit of a write to every node.

The step runs after the revisions, in their transaction, and places only tables not yet in
Citus's metadata: a database that gains the extension later is distributed by its next
`dtbase-migrate` (rows already there move to the nodes), and tables that later revisions
add are placed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from dtbase_core.shards import has_citus

DISTRIBUTION_COLUMN = "sensor_id"
# Joined by reads of the readings (latest readings, derived measures); must not point at a
# table outside this set (a reference table's foreign keys point at reference tables only).
REFERENCE_TABLES = ("sensor_type", "sensor_measure", "sensor", "sensor_type_measure_relation")

Kind = Literal["reference", "local", "distributed"]

_PLACED = sa.text(
    "select exists (select from citus_tables where table_name = cast(:t as regclass))"
)
_ADD_LOCAL = sa.text(
    "select citus_add_local_table_to_metadata(:t, cascade_via_foreign_keys => true)"
)
_TRUNCATE_LOCAL = sa.text("select truncate_local_data_after_distributing_table(:t)")


@dataclass(frozen=True)
class Placement:
    table: str
    kind: Kind


def distributed_tables() -> list[str]:
    """The readings and rollups; the first is the one the others are colocated with."""
    from dtbase_core.orm import reading_rollup, reading_rollup_daily, reading_tables

    return [t.name for t in (*reading_tables.values(), reading_rollup, reading_rollup_daily)]


def kind_of(table: str) -> Kind:
    if table in distributed_tables():
        return "distributed"
    return "reference" if table in REFERENCE_TABLES else "local"


def plan(connection: sa.Connection) -> list[Placement]:
    """What `distribute` would do here: the core tables not yet in Citus's metadata. Each
    kind in turn (reference tables, then local ones, whose foreign keys may point at them),
    parents before children within a kind; the distributed tables last, the anchor the
    others are colocated with first."""
    from dtbase_core.orm import Base

    if not has_citus(connection):
        return []
    placed = set(connection.scalars(sa.text("select table_name::text from citus_tables")))
    existing = set(sa.inspect(connection).get_table_names())
    steps = [
        Placement(t.name, kind_of(t.name))
        for t in Base.metadata.sorted_tables
        if t.name in existing and t.name not in placed
    ]
    order: list[Kind] = ["reference", "local", "distributed"]
    anchor = distributed_tables()[0]
    return sorted(steps, key=lambda s: (order.index(s.kind), s.table != anchor))


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
        table = {"t": step.table}
        if step.kind == "local":
            # Citus adds a local table together with every local table its foreign keys
            # connect it to: a later step may find its table added already.
            if not connection.scalar(_PLACED, table):
                connection.execute(_ADD_LOCAL, table)
            continue
        if step.kind == "reference":
            connection.execute(sa.text("select create_reference_table(:t)"), table)
        else:
            colocate = "default" if step.table == anchor else anchor
            connection.execute(
                sa.text("select create_distributed_table(:t, :c, colocate_with => :w)"),
                {**table, "c": DISTRIBUTION_COLUMN, "w": colocate},
            )
        # Rows already there were copied to the nodes; the coordinator's copy is dead.
        connection.execute(_TRUNCATE_LOCAL, table)
    return steps
