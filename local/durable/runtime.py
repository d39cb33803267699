"""The runtime: one dispatcher thread per host that runs the episodes of the app's
orchestrations (replay.py) in transactions, and its activities (workers.py: synchronous
ones in the worker pool, coroutines on the host's activity loop), against the tables of
store.py; and the client's operations (start, raise
an event, terminate, purge, status) that the management API (api.py) serves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from local.durable import store
from local.durable.bindings import DEFAULT_HUB
from local.durable.protocol import (
    EVENT_RAISED,
    EXECUTION_COMPLETED,
    EXECUTION_TERMINATED,
    RUNNING,
    TASK_COMPLETED,
    TASK_FAILED,
    TERMINAL,
    TIMER_FIRED,
    event,
    execution_started,
    utcnow,
    valid_instance_id,
)
from local.durable.replay import Episode, Replayer, failure_output, parent_notice
from local.durable.state import InstanceState
from local.durable.status import status_json
from local.durable.workers import AsyncActivities, Outcome, WorkerPool, is_coroutine_activity

log = logging.getLogger(__name__)

HOST_CHECK_SECONDS = 10.0  # how often the liveness lock's connection is checked
# Coroutine activities running at once, per core: Durable's maxConcurrentActivityFunctions
# default on a dedicated plan (the Python worker runs them concurrently on its loop).
ASYNC_ACTIVITIES_PER_CORE = 10


@dataclass
class Stats:
    """Where the runtime's time goes (seconds), for the overhead measurements."""

    episodes: int = 0
    events: int = 0
    episode_read: float = 0.0  # claim, messages, history
    episode_replay: float = 0.0  # the SDK's replay of the orchestrator
    episode_write: float = 0.0  # history, work items, messages, status, commit
    activities: int = 0
    activity_claim: float = 0.0  # finding and claiming a work item
    activity_run: float = 0.0  # submit to result, in the worker pool (the activity's own)
    activity_record: float = 0.0  # queueing the result, deleting the item, commit
    history_events_read: int = 0
    history_events_written: int = 0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class _RolledBack(Exception):
    """Leaves an episode's transaction without committing it."""


@dataclass
class _Running:
    """An activity running in the pool; no transaction is open for it."""

    item: Any
    started: float
    future: Future[Outcome]
    generation: object  # the pool it runs in (None: the activity loop)


class DurableRuntime:
    """Runs the orchestrators and activities of one function app against PostgreSQL."""

    def __init__(
        self,
        functions: list[Any],
        *,
        database_url: str,
        app_spec: str,
        hub_name: str = DEFAULT_HUB,
        workers: int | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.orchestrators: dict[str, Any] = {}
        self.activities: dict[str, Any] = {}
        for fn in functions:
            kind = fn.get_trigger().get_binding_name()
            if kind == "orchestrationTrigger":
                self.orchestrators[fn.get_function_name()] = fn
            elif kind == "activityTrigger":
                self.activities[fn.get_function_name()] = fn
        self.replayer = Replayer(self.orchestrators, set(self.activities))
        self.coroutine_activities = sorted(
            name for name, fn in self.activities.items() if is_coroutine_activity(fn)
        )
        self.process_activities = sorted(set(self.activities) - set(self.coroutine_activities))
        self.app_spec = app_spec
        self.hub_name = hub_name
        self.workers = workers or os.cpu_count() or 1
        self.async_limit = ASYNC_ACTIVITIES_PER_CORE * (os.cpu_count() or 1)
        self.poll_interval = poll_interval
        self.stats = Stats()
        from dtbase_core.db import create_db_engine

        # Connections: the dispatcher's, the liveness lock's, the client operations'.
        self.engine = create_db_engine(database_url, pool_size=6, max_overflow=4)
        self.host_id = 0  # set when the liveness lock is taken
        self._host_lock: sa.Connection | None = None
        self._host_checked = 0.0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._results: queue.Queue[_Running] = queue.Queue()
        self._running: dict[int, _Running] = {}
        self._pool: WorkerPool | None = None
        self._loop_activities: AsyncActivities | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def active(self) -> bool:
        return bool(self.orchestrators)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        """Start the dispatcher thread (and, if the app has activities, the warm pool)."""
        if not self.active or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name="durable-dispatcher", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the Durable worker pool did not start in time")
        if self._failure is not None:
            raise RuntimeError(f"the Durable runtime failed to start: {self._failure}")

    def stop(self) -> None:
        """Stop dispatching; activities still running are left to the next host."""
        if self._thread is not None:
            self._stopping.set()
            self._wake.set()
            self._thread.join(30)
            self._thread = None
        self.engine.dispose()

    def wake(self) -> None:
        self._wake.set()

    def _main(self) -> None:
        try:
            self._take_host_lock()
            if self.process_activities:
                self._pool = WorkerPool(self.app_spec, self.workers)
                self._pool.start()
            if self.coroutine_activities:
                self._loop_activities = AsyncActivities(self.activities)
                self._loop_activities.start()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        with contextlib.suppress(Exception):
            self._log_recovery()
        try:
            while not self._stopping.is_set():
                try:
                    self._check_host_lock()
                    busy = self._step()
                    wait = 0.0 if busy else self._idle_wait()
                except Exception:  # the database went away, say: try again shortly
                    log.exception("durable dispatcher step failed")
                    wait = self.poll_interval
                if wait > 0:
                    self._wake.wait(wait)
                    self._wake.clear()
        finally:
            self._shutdown()

    def _take_host_lock(self) -> None:
        """Hold this host's liveness lock on a connection of its own, with no transaction
        open: while it is held, no other host takes the work items this one runs."""
        conn = self.engine.connect()
        try:
            while True:
                host_id = secrets.randbelow(2**31 - 1) + 1
                if store.lock_host(conn, host_id):
                    conn.commit()  # the lock is the session's: end the transaction
                    break
        except BaseException:
            conn.close()
            raise
        self._host_lock, self.host_id = conn, host_id
        self._host_checked = time.monotonic()

    def _check_host_lock(self) -> None:
        """If the lock's connection was lost (the server restarted), take a new lock: the
        items this host runs may be claimed again meanwhile, and their results are then
        recorded by whichever host finishes first (store.finish_work_item)."""
        if time.monotonic() - self._host_checked < HOST_CHECK_SECONDS:
            return
        self._host_checked = time.monotonic()
        try:
            assert self._host_lock is not None
            self._host_lock.execute(sa.select(1))
            self._host_lock.commit()
        except Exception:
            log.warning("durable: the host's liveness lock was lost; taking it again")
            with contextlib.suppress(Exception):
                assert self._host_lock is not None
                self._host_lock.invalidate()
                self._host_lock.close()
            old = self.host_id
            self._take_host_lock()
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(store.work_item)
                    .where(store.work_item.c.claimed_by == old)
                    .values(claimed_by=self.host_id)
                )

    def _log_recovery(self) -> None:
        """Say what an earlier host left: activities it claimed but never recorded run
        again now (its liveness lock went with its connection), and instances go on."""
        with self.engine.connect() as conn:
            running = conn.scalar(
                sa.select(sa.func.count())
                .select_from(store.instance)
                .where(
                    store.instance.c.name.in_(list(self.orchestrators)),
                    store.instance.c.status.in_(RUNNING),
                )
            )
            orphaned = store.claimed_items(conn, list(self.activities))
        if running:
            log.warning(
                "durable: resuming %d unfinished instance(s), %d activity run(s) to run again",
                running,
                orphaned,
            )

    def _shutdown(self) -> None:
        """Activities still running are not waited for: closing the liveness lock's
        connection hands their work items to the next host at once."""
        self._running.clear()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._loop_activities is not None:
            self._loop_activities.shutdown()
            self._loop_activities = None
        if self._host_lock is not None:
            with contextlib.suppress(Exception):
                self._host_lock.invalidate()  # closed, not pooled: the lock goes at once
                self._host_lock.close()
            self._host_lock = None

    def _idle_wait(self) -> float:
        now = utcnow()
        with self.engine.connect() as conn:
            due = store.next_due(conn, list(self.orchestrators), now)
        wait = self.poll_interval
        if due is not None:
            wait = min(wait, max((due - now).total_seconds(), 0.0))
        return wait

    def _step(self) -> bool:
        """One round: record finished activities, run due episodes, start activities."""
        busy = False
        while True:
            try:
                running = self._results.get_nowait()
            except queue.Empty:
                break
            self._record(running)
            busy = True
        for _ in range(50):
            if not self._run_episode():
                break
            busy = True
        while self._pool is not None and self._count(in_pool=True) < self.workers:
            if not self._claim_activity(self.process_activities):
                break
            busy = True
        while self._loop_activities is not None and self._count(in_pool=False) < self.async_limit:
            if not self._claim_activity(self.coroutine_activities):
                break
            busy = True
        return busy

    def _count(self, *, in_pool: bool) -> int:
        return sum((r.generation is not None) == in_pool for r in self._running.values())

    # -- activities: claimed, run and recorded in three steps -------------------------------

    def _claim_activity(self, names: list[str]) -> bool:
        started = time.perf_counter()
        with self.engine.begin() as conn:
            item = store.claim_work_item(conn, names, self.host_id)
        if item is None:
            return False
        claimed = time.perf_counter()
        self.stats.activity_claim += claimed - started
        if item.name in self.coroutine_activities:
            assert self._loop_activities is not None
            future = self._loop_activities.submit(item.name, item.input)
            generation: object = None
        else:
            assert self._pool is not None
            try:
                future = self._pool.submit(item.name, item.input)
            except BrokenProcessPool:
                self._pool.restart()
                future = self._pool.submit(item.name, item.input)
            generation = self._pool.generation
        running = _Running(item, claimed, future, generation)
        self._running[item.id] = running

        def done(_: Future[Outcome]) -> None:
            self._results.put(running)
            self._wake.set()

        future.add_done_callback(done)
        return True

    def _record(self, running: _Running) -> None:
        finished = time.perf_counter()
        self.stats.activity_run += finished - running.started
        self._running.pop(running.item.id, None)
        item = running.item
        try:
            ok, value, details = running.future.result()
        except BrokenProcessPool as exc:
            # A worker died (os._exit, a crash, the OOM killer): every activity the pool
            # was running fails, as on Azure when the worker process goes; a new pool
            # takes the next ones.
            ok, value, details = False, f"Activity function '{item.name}' failed: {exc}", ""
            if self._pool is not None and running.generation is self._pool.generation:
                self._pool.restart()
        except Exception as exc:
            ok, value, details = False, f"Activity function '{item.name}' failed: {exc!r}", ""
        now = utcnow()
        if ok:
            result = event(TASK_COMPLETED, now, TaskScheduledId=item.task_id, Result=value)
        else:
            result = event(
                TASK_FAILED, now, TaskScheduledId=item.task_id, Reason=value, Details=details
            )
        with self.engine.begin() as conn:
            if store.finish_work_item(conn, item.id, self.host_id):
                store.add_message_if_running(conn, item.instance_id, item.execution_id, result, now)
        self.stats.activities += 1
        self.stats.activity_record += time.perf_counter() - finished

    # -- episodes ----------------------------------------------------------------------

    def _run_episode(self) -> bool:
        t0 = time.perf_counter()
        now = utcnow()
        failed: tuple[Any, str] | None = None
        try:
            with self.engine.connect() as conn, conn.begin():
                row = store.claim_episode(conn, list(self.orchestrators), now)
                if row is None:
                    return False
                messages = store.due_messages(conn, row.instance_id, now)
                past = store.get_history(conn, row.instance_id)
                t1 = time.perf_counter()
                self.stats.episode_read += t1 - t0
                try:
                    episode = self.replayer.episode(row, messages, past, now)
                    if episode is not None:
                        self._store_episode(conn, row, episode, len(past), now)
                except sa.exc.OperationalError:
                    raise  # the database, not the instance: the step is tried again
                except Exception as exc:
                    log.exception("episode of %s (%s) failed", row.instance_id, row.name)
                    failed = (row, f"{type(exc).__name__}: {exc}")
                    raise _RolledBack from exc
        except _RolledBack:
            assert failed is not None
            self._fail(*failed)
            return True
        if episode is not None:
            self.stats.events += len(episode.consumed)
            self.stats.episode_replay += episode.replay_seconds
            self.stats.history_events_written += len(episode.history)
        self.stats.history_events_read += len(past)
        self.stats.episode_write += (
            time.perf_counter() - t1 - (episode.replay_seconds if episode else 0.0)
        )
        self.stats.episodes += 1
        return True

    def _store_episode(
        self, conn: sa.Connection, row: Any, episode: Episode, seq: int, now: datetime
    ) -> None:
        store.delete_messages(conn, episode.consumed)
        if episode.cancelled_timers:
            conn.execute(
                sa.delete(store.message).where(
                    store.message.c.instance_id == row.instance_id,
                    store.message.c.event["EventType"].as_integer() == TIMER_FIRED,
                    store.message.c.event["TimerId"].as_integer().in_(episode.cancelled_timers),
                )
            )
        if episode.continued is not None:
            self._continue_as_new(conn, row, episode, now)
            return
        for child in episode.children:
            store.insert_instance(conn, **child)
        store.append_history(conn, row.instance_id, seq, episode.history)
        store.add_work_items(conn, episode.work)
        parent_execution = episode.state.parent_execution
        for target, message, visible in episode.messages:
            if target == row.instance_id:
                store.add_messages(conn, [(target, message, visible)])
            else:
                store.add_message_if_running(conn, target, parent_execution, message, visible)
        if episode.finished:
            store.end_instance_work(conn, row.instance_id)
        store.update_instance(conn, row.instance_id, **episode.values)

    def _continue_as_new(
        self, conn: sa.Connection, row: Any, episode: Episode, now: datetime
    ) -> None:
        """A fresh execution: new history, new input; events raised meanwhile are kept."""
        assert episode.continued is not None
        store.reset_for_new_execution(conn, row.instance_id)
        input_json = episode.continued.get("input")
        store.add_messages(
            conn, [(row.instance_id, execution_started(row.name, input_json, now), now)]
        )
        fresh = InstanceState(parent_execution=episode.state.parent_execution)
        values = dict(
            episode.values, input=input_json, execution_id=uuid.uuid4().hex, state=fresh.to_json()
        )
        store.update_instance(conn, row.instance_id, **values)

    def _fail(self, row: Any, error: str) -> None:
        """An episode the runtime itself could not run: the instance fails (rather than
        being retried for ever)."""
        now = utcnow()
        output = failure_output(row.name, error)
        with self.engine.begin() as conn:
            current = store.get_instance(conn, row.instance_id, lock=True)
            if current is None or current.status in TERMINAL:
                return
            store.end_instance_work(conn, row.instance_id)
            store.update_instance(
                conn, row.instance_id, status="Failed", output=output, last_updated_time=now
            )
            self._notify_parent(conn, row, "Failed", None, error, now)

    def _notify_parent(
        self,
        conn: sa.Connection,
        row: Any,
        status: str,
        output: str | None,
        error: str | None,
        now: datetime,
    ) -> None:
        parent_execution = InstanceState.from_json(row.state).parent_execution
        for target, notice, visible in parent_notice(row, status, output, error, now):
            store.add_message_if_running(conn, target, parent_execution, notice, visible)

    # -- the client's operations -------------------------------------------------------

    def start_new(self, name: str, instance_id: str | None, input_json: str | None) -> str:
        """Create (or replace an ended) instance; raises LookupError for an unknown
        orchestrator, ValueError for a bad id, FileExistsError if one is running."""
        if name not in self.orchestrators:
            raise LookupError(
                f"The function '{name}' doesn't exist, is disabled, or is not an "
                "orchestrator function."
            )
        instance_id = instance_id or uuid.uuid4().hex
        if not valid_instance_id(instance_id):
            raise ValueError(f"Invalid instance id: {instance_id!r}")
        now = utcnow()
        with self.engine.begin() as conn:
            existing = store.get_instance(conn, instance_id, lock=True)
            if existing is not None and existing.status in RUNNING:
                raise FileExistsError(
                    f"An Orchestration instance with the status {existing.status} already exists."
                )
            store.insert_instance(
                conn,
                instance_id=instance_id,
                name=name,
                input_json=input_json,
                now=now,
                execution_id=uuid.uuid4().hex,
            )
        self.wake()
        return instance_id

    def raise_event(self, instance_id: str, event_name: str, data_json: str | None) -> int:
        """202 queued, 404 unknown instance, 410 instance ended."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = store.get_instance(conn, instance_id)
            if row is None:
                return 404
            if row.status in TERMINAL:
                return 410
            raised = event(EVENT_RAISED, now, Name=event_name, Input=data_json)
            store.add_message_if_running(conn, instance_id, None, raised, now)
        self.wake()
        return 202

    def terminate(self, instance_id: str, reason: str | None) -> int:
        """202 terminated, 404 unknown, 410 already ended."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = store.get_instance(conn, instance_id, lock=True)
            if row is None:
                return 404
            if row.status in TERMINAL:
                return 410
            output = json.dumps(reason or "")
            seq = conn.scalar(
                sa.select(sa.func.count())
                .select_from(store.history)
                .where(store.history.c.instance_id == instance_id)
            )
            store.append_history(
                conn,
                instance_id,
                int(seq or 0),
                [
                    event(EXECUTION_TERMINATED, now, Input=reason, IsPlayed=True),
                    event(
                        EXECUTION_COMPLETED,
                        now,
                        OrchestrationStatus="Terminated",
                        Result=output,
                        IsPlayed=True,
                    ),
                ],
            )
            store.end_instance_work(conn, instance_id)
            store.update_instance(
                conn, instance_id, status="Terminated", output=output, last_updated_time=now
            )
            self._notify_parent(conn, row, "Terminated", None, reason, now)
        self.wake()
        return 202

    def claim_timer(self, name: str, scheduled: datetime) -> bool:
        """For the scheduler: whether this host is the one to fire this occurrence."""
        with self.engine.begin() as conn:
            return store.claim_timer_run(conn, name, scheduled, utcnow())

    def purge(self, instance_id: str) -> int:
        with self.engine.begin() as conn:
            return store.purge(conn, instance_id)

    def status(
        self,
        instance_id: str,
        *,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = True,
    ) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = store.get_instance(conn, instance_id)
            if row is None:
                return None
            events = store.get_history(conn, instance_id) if show_history else None
        return status_json(row, events, show_history_output, show_input)

    def list_status(self, statuses: list[str] | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = store.list_instances(conn, statuses)
        return [status_json(row, None, False, True) for row in rows]
