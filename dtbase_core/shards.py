"""Reads that Citus runs whole on one node at a time.

A lateral join from a list of series (or from the sensors, a reference table) into the
readings with a LIMIT inside is what Citus cannot split across shards ("cannot push down
this subquery"). Pinned to the sensors of one shard (`sensor_id = any(:pin)` beside the
join), the same statement is a router query: Citus sends it whole to the node holding that
shard, which plans it as plain PostgreSQL would. So on Citus such a read runs once per
shard that holds any of its sensors; on plain PostgreSQL it runs once, unpinned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

# Every readings and rollup table is colocated with this one (migrations/citus.py), so a
# sensor's rows in all of them are in shards of the same index on the same node.
ANCHOR = "sensor_float_reading"

# Whether a database is a Citus coordinator (or a worker): the extension is installed.
HAS_CITUS = "select exists (select from pg_extension where extname = 'citus')"


def has_citus(connection: sa.Connection | Session) -> bool:
    return bool(connection.scalar(sa.text(HAS_CITUS)))


def is_citus(session: Session) -> bool:
    """Whether the session's database is a Citus coordinator: asked once per pooled
    connection, and kept in its `info` (db.py's engines note it when they connect)."""
    info = session.connection().info
    if "citus" not in info:
        info["citus"] = has_citus(session)
    return bool(info["citus"])


def pins(session: Session, sensor_ids: Iterable[int] | sa.Select[Any]) -> list[list[int] | None]:
    """[None] on plain PostgreSQL (one unpinned statement); on Citus, the distinct sensor
    ids (or those a query selects) grouped by the shard that holds their readings (one
    statement per group)."""
    if not is_citus(session):
        return [None]
    if isinstance(sensor_ids, sa.Select):
        sensor_ids = session.scalars(sensor_ids).all()
    rows = session.execute(
        sa.text(
            "select s, get_shard_id_for_distribution_column(:anchor, s) "
            "from unnest(cast(:ids as int[])) as s"
        ),
        {"anchor": ANCHOR, "ids": sorted(set(sensor_ids))},
    )
    groups: dict[int, list[int]] = defaultdict(list)
    for sensor_id, shard in rows:
        groups[shard].append(sensor_id)
    return list(groups.values())


def pin_sql(alias: str, pin: list[int] | None) -> str:
    """The text-SQL clause pinning `alias`'s sensor to `pin` (bind it as `pin`): empty
    when unpinned."""
    return "" if pin is None else f"and {alias}.sensor_id = any(cast(:pin as int[]))"


def pin_clause(column: Any, pin: list[int] | None) -> Any:
    """The same for a SQLAlchemy query: `column` in `pin`, or true when unpinned."""
    if pin is None:
        return sa.true()
    return column == sa.any_(sa.literal(pin, pg.ARRAY(sa.Integer)))
