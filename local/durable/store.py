"""The local Durable runtime's tables, and the queries the runtime and its HTTP API make.

Created by the local host's own migrations (local/durable/migrations/, applied by
`dtbase-local` only), kept on their own `MetaData`: they are the local host's, not the
data model's, and a deployed database never has them.

- `durable_instance`: one row per orchestration instance, its status, input, output,
  custom status, and the runtime's bookkeeping (`state`: an `InstanceState`).
- `durable_history`: the instance's history events, in the SDK's JSON shape, in order.
- `durable_message`: events that the instance's next episode will hand to the orchestrator
  (ExecutionStarted, TaskCompleted, TimerFired at its fire time, EventRaised...), its
  control queue.
- `durable_work_item`: activities waiting to run, or running. A host claims one in a short
  transaction by writing its host id into `claimed_by`, runs the activity with no
  transaction open, and records the result (and deletes the item) in a second short
  transaction. A host proves it is alive by holding a session advisory lock on its id
  (`HOST_LOCK_CLASS`, host id): when it dies, PostgreSQL drops the lock with its
  connection, and its claimed items are claimable again (at-least-once, as on Azure).
- `durable_timer_run`: the timer occurrences fired, so that hosts sharing a database fire
  each occurrence once (local/scheduler.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert

from dtbase_core.orm.base import NAMING_CONVENTION
from local.durable.protocol import EVENT_RAISED, RUNNING, execution_started

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

ID_LENGTH = 200  # instance ids: 32 hex digits, or the caller's own, or parent:taskid
NAME_LENGTH = 200

instance = sa.Table(
    "durable_instance",
    metadata,
    sa.Column("instance_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    # Changes at each continue_as_new: late results of an earlier execution are dropped.
    sa.Column("execution_id", sa.String(32), nullable=False),
    sa.Column("input", sa.Text(), nullable=True),
    sa.Column("output", sa.Text(), nullable=True),
    sa.Column("custom_status", sa.Text(), nullable=True),
    sa.Column("parent_instance_id", sa.String(ID_LENGTH), nullable=True),
    sa.Column("parent_task_id", sa.Integer(), nullable=True),
    sa.Column("state", JSONB(), nullable=False),
    sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_updated_time", sa.DateTime(timezone=True), nullable=False),
)

history = sa.Table(
    "durable_history",
    metadata,
    sa.Column(
        "instance_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("durable_instance.instance_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer(), primary_key=True),
    sa.Column("event", JSONB(), nullable=False),
)

message = sa.Table(
    "durable_message",
    metadata,
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
    sa.Column(
        "instance_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("durable_instance.instance_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("event", JSONB(), nullable=False),
    sa.Column("visible_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

work_item = sa.Table(
    "durable_work_item",
    metadata,
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
    # No foreign key: an item whose instance has gone or ended is skipped, and the late
    # result of one that was running is dropped.
    sa.Column("instance_id", sa.String(ID_LENGTH), nullable=False, index=True),
    sa.Column("execution_id", sa.String(32), nullable=False),
    sa.Column("task_id", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("input", sa.Text(), nullable=True),
    sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
    # The host running it (None: waiting); see the module docstring.
    sa.Column("claimed_by", sa.BigInteger(), nullable=True),
)

timer_run = sa.Table(
    "durable_timer_run",
    metadata,
    sa.Column("name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("scheduled_time", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("fired_time", sa.DateTime(timezone=True), nullable=False),
)

TIMER_RUNS_KEPT = timedelta(days=7)
# Session advisory locks `(HOST_LOCK_CLASS, host id)` mark the hosts that are alive.
HOST_LOCK_CLASS = 7283402


# --- reads ------------------------------------------------------------------------------


def get_instance(conn: sa.Connection, instance_id: str, *, lock: bool = False) -> Any:
    query = sa.select(instance).where(instance.c.instance_id == instance_id)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).one_or_none()


def list_instances(conn: sa.Connection, statuses: list[str] | None = None) -> list[Any]:
    query = sa.select(instance).order_by(instance.c.created_time, instance.c.instance_id)
    if statuses:
        query = query.where(instance.c.status.in_(statuses))
    return list(conn.execute(query))


def get_history(conn: sa.Connection, instance_id: str) -> list[dict[str, Any]]:
    return list(
        conn.scalars(
            sa.select(history.c.event)
            .where(history.c.instance_id == instance_id)
            .order_by(history.c.seq)
        )
    )


def claim_episode(conn: sa.Connection, orchestrators: list[str], now: datetime) -> Any:
    """Lock one instance of these orchestrators that has a message due; None if none.

    The lock (held until the caller's transaction ends) is what makes an episode run in
    one process only; other hosts skip the locked instance.
    """
    ready = (
        sa.select(instance)
        .join(message, message.c.instance_id == instance.c.instance_id)
        .where(
            instance.c.name.in_(orchestrators),
            instance.c.status.in_(RUNNING),
            message.c.visible_at <= now,
        )
        .order_by(message.c.id)
        .limit(1)
        .with_for_update(of=instance, skip_locked=True)
    )
    return conn.execute(ready).one_or_none()


def due_messages(conn: sa.Connection, instance_id: str, now: datetime) -> list[Any]:
    return list(
        conn.execute(
            sa.select(message.c.id, message.c.event)
            .where(message.c.instance_id == instance_id, message.c.visible_at <= now)
            .order_by(message.c.id)
        )
    )


def next_due(conn: sa.Connection, orchestrators: list[str], now: datetime) -> datetime | None:
    """When the earliest future message (a timer) of these orchestrators becomes due."""
    return conn.scalar(
        sa.select(sa.func.min(message.c.visible_at))
        .join(instance, message.c.instance_id == instance.c.instance_id)
        .where(
            instance.c.name.in_(orchestrators),
            instance.c.status.in_(RUNNING),
            message.c.visible_at > now,
        )
    )


def _claimer_alive(claimed_by: Any) -> sa.ColumnElement[bool]:
    """Whether the host with this id holds its advisory lock on this database."""
    locks = sa.table(
        "pg_locks",
        sa.column("locktype"),
        sa.column("database"),
        sa.column("classid"),
        sa.column("objid"),
        sa.column("objsubid"),
        sa.column("granted"),
    )
    this_database: sa.Select[tuple[Any]] = (
        sa.select(sa.column("oid"))
        .select_from(sa.table("pg_database"))
        .where(sa.column("datname") == sa.func.current_database())
    )
    return sa.exists().where(
        locks.c.locktype == "advisory",
        locks.c.database == this_database.scalar_subquery(),
        sa.cast(locks.c.classid, sa.BigInteger) == HOST_LOCK_CLASS,
        sa.cast(locks.c.objid, sa.BigInteger) == claimed_by,
        locks.c.objsubid == 2,  # the two-key form of pg_advisory_lock
        locks.c.granted,
    )


def claim_work_item(conn: sa.Connection, activities: list[str], host_id: int) -> Any:
    """Claim the oldest runnable work item of these activities for this host: one not
    claimed, or claimed by a host that has died. None if there is none. The row lock is
    only held until the caller commits, a moment later."""
    candidate = (
        sa.select(work_item.c.id)
        .join(instance, instance.c.instance_id == work_item.c.instance_id)
        .where(
            work_item.c.name.in_(activities),
            instance.c.status.in_(RUNNING),
            sa.or_(work_item.c.claimed_by.is_(None), ~_claimer_alive(work_item.c.claimed_by)),
        )
        .order_by(work_item.c.id)
        .limit(1)
        .with_for_update(of=work_item, skip_locked=True)
    )
    return conn.execute(
        sa.update(work_item)
        .where(work_item.c.id == candidate.scalar_subquery())
        .values(claimed_by=host_id)
        .returning(*work_item.c)
    ).one_or_none()


def lock_host(conn: sa.Connection, host_id: int) -> bool:
    """Take this host's liveness lock on this session (False: the id is in use)."""
    return bool(conn.scalar(sa.select(sa.func.pg_try_advisory_lock(HOST_LOCK_CLASS, host_id))))


def claimed_items(conn: sa.Connection, activities: list[str]) -> int:
    """Work items left claimed by hosts that are not alive any more."""
    return int(
        conn.scalar(
            sa.select(sa.func.count())
            .select_from(work_item)
            .where(
                work_item.c.name.in_(activities),
                work_item.c.claimed_by.is_not(None),
                ~_claimer_alive(work_item.c.claimed_by),
            )
        )
        or 0
    )


# --- writes -----------------------------------------------------------------------------


def insert_instance(
    conn: sa.Connection,
    *,
    instance_id: str,
    name: str,
    input_json: str | None,
    now: datetime,
    execution_id: str,
    parent_instance_id: str | None = None,
    parent_task_id: int | None = None,
    state: dict[str, Any] | None = None,
) -> None:
    """A new (or restarted) instance, Pending, with its ExecutionStarted message."""
    conn.execute(sa.delete(instance).where(instance.c.instance_id == instance_id))
    conn.execute(
        sa.insert(instance).values(
            instance_id=instance_id,
            name=name,
            status="Pending",
            execution_id=execution_id,
            input=input_json,
            output=None,
            custom_status=None,
            parent_instance_id=parent_instance_id,
            parent_task_id=parent_task_id,
            state=state or {},
            created_time=now,
            last_updated_time=now,
        )
    )
    add_messages(conn, [(instance_id, execution_started(name, input_json, now), now)])


def add_messages(conn: sa.Connection, rows: list[tuple[str, dict[str, Any], datetime]]) -> None:
    if rows:
        conn.execute(
            sa.insert(message),
            [{"instance_id": i, "event": e, "visible_at": v} for i, e, v in rows],
        )


def add_message_if_running(
    conn: sa.Connection,
    instance_id: str,
    execution_id: str | None,
    event: dict[str, Any],
    visible_at: datetime,
) -> None:
    """Queue an event for an instance's execution, unless that has ended (a late result
    is dropped)."""
    where = [instance.c.instance_id == instance_id, instance.c.status.in_(RUNNING)]
    if execution_id is not None:
        where.append(instance.c.execution_id == execution_id)
    conn.execute(
        sa.insert(message).from_select(
            ["instance_id", "event", "visible_at"],
            sa.select(
                instance.c.instance_id,
                sa.literal(event, JSONB()),
                sa.literal(visible_at, sa.DateTime(timezone=True)),
            ).where(*where),
        )
    )


def delete_messages(conn: sa.Connection, ids: list[int]) -> None:
    if ids:
        conn.execute(sa.delete(message).where(message.c.id.in_(ids)))


def append_history(
    conn: sa.Connection, instance_id: str, start_seq: int, events: list[dict[str, Any]]
) -> None:
    if events:
        conn.execute(
            sa.insert(history),
            [
                {"instance_id": instance_id, "seq": start_seq + n, "event": event}
                for n, event in enumerate(events)
            ],
        )


def add_work_items(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(sa.insert(work_item), rows)


def finish_work_item(conn: sa.Connection, item_id: int, host_id: int) -> bool:
    """Delete a work item this host still holds; False if it does not (the item was
    dropped with its instance, or taken over: its result is not this host's to record)."""
    deleted = conn.execute(
        sa.delete(work_item)
        .where(work_item.c.id == item_id, work_item.c.claimed_by == host_id)
        .returning(work_item.c.id)
    )
    return deleted.first() is not None


def update_instance(conn: sa.Connection, instance_id: str, **values: Any) -> None:
    conn.execute(sa.update(instance).where(instance.c.instance_id == instance_id).values(**values))


def _delete_work(conn: sa.Connection, instance_id: str) -> None:
    """Its work items, waiting or running (a running one's result is then dropped)."""
    conn.execute(sa.delete(work_item).where(work_item.c.instance_id == instance_id))


def reset_for_new_execution(conn: sa.Connection, instance_id: str) -> None:
    """continue_as_new: a fresh history; events raised meanwhile are kept, the rest go."""
    conn.execute(sa.delete(history).where(history.c.instance_id == instance_id))
    _delete_work(conn, instance_id)
    conn.execute(
        sa.delete(message).where(
            message.c.instance_id == instance_id,
            message.c.event["EventType"].as_integer() != EVENT_RAISED,
        )
    )


def end_instance_work(conn: sa.Connection, instance_id: str) -> None:
    """An ended instance has nothing left to run: drop its queued messages and work."""
    conn.execute(sa.delete(message).where(message.c.instance_id == instance_id))
    _delete_work(conn, instance_id)


def purge(conn: sa.Connection, instance_id: str) -> int:
    _delete_work(conn, instance_id)
    result = conn.execute(
        sa.delete(instance)
        .where(instance.c.instance_id == instance_id)
        .returning(instance.c.instance_id)
    )
    return len(result.all())


def claim_timer_run(conn: sa.Connection, name: str, scheduled: datetime, now: datetime) -> bool:
    """True for the one host that records this occurrence of this timer first."""
    claimed = conn.execute(
        insert(timer_run)
        .values(name=name, scheduled_time=scheduled, fired_time=now)
        .on_conflict_do_nothing()
        .returning(timer_run.c.name)
    ).first()
    conn.execute(
        sa.delete(timer_run).where(
            timer_run.c.name == name, timer_run.c.scheduled_time < now - TIMER_RUNS_KEPT
        )
    )
    return claimed is not None
