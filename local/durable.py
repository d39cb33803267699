"""Durable Functions on the local host: orchestrations replayed by the SDK itself,
instances kept in PostgreSQL, activities in a pool of worker processes, and the HTTP
management API that the SDK's client and the starters' status URLs use.

How an orchestration runs (NOTES.md §1 has the protocol). Each *episode* is one
transaction: lock an instance that has messages due (SKIP LOCKED, so two hosts never
run the same episode), read its history, hand the history plus the new events to the
orchestrator function's `handle` (`Orchestrator.create(...).handle`: the SDK's own
replay), and store what it asks for: the events it produced, activity work items, timer
messages due at their fire time, child instances, and the instance's new status. A
crash anywhere in an episode rolls it back; the messages are still there for the next.

Task ids mirror the SDK's counter: one per atomic action in order (an external-event
wait takes none), plus the hidden ids of `call_*_with_retry` (a retry timer after each
failure, a re-scheduled task when that timer fires). While an instance has a retry in
progress, an episode takes one event at a time, so that those hidden ids are allocated
in the SDK's order; otherwise it takes every event due, as the Functions host does.

Activities run in a `ProcessPoolExecutor` (spawned, warm, one worker per core) whose
workers import the function app themselves. A host claims a work item by locking its
row and keeps it locked while the activity runs; the result is queued for the
orchestrator and the item deleted in that same transaction. A host that dies releases
its locks with its connection, so the items it was running are claimed again by the
next host (at-least-once, as on Azure); its workers die with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import inspect
import json
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote

import sqlalchemy as sa

from local import durable_store as store
from local.durable_store import timestamp, utcnow

log = logging.getLogger(__name__)

DEFAULT_HUB = "DTBaseHub"
WEBHOOK_PREFIX = "/runtime/webhooks/durabletask/"
MAX_INSTANCE_ID_LENGTH = 100

# DTFx history event types (azure.durable_functions.models.history.HistoryEventType).
EXECUTION_STARTED = 0
EXECUTION_COMPLETED = 1
EXECUTION_TERMINATED = 3
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
SUB_CREATED = 7
SUB_COMPLETED = 8
SUB_FAILED = 9
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13
EVENT_RAISED = 15

EVENT_NAMES = {
    0: "ExecutionStarted",
    1: "ExecutionCompleted",
    3: "ExecutionTerminated",
    4: "TaskScheduled",
    5: "TaskCompleted",
    6: "TaskFailed",
    7: "SubOrchestrationInstanceCreated",
    8: "SubOrchestrationInstanceCompleted",
    9: "SubOrchestrationInstanceFailed",
    10: "TimerCreated",
    11: "TimerFired",
    12: "OrchestratorStarted",
    13: "OrchestratorCompleted",
    15: "EventRaised",
}

# Action types (azure.durable_functions.models.actions.ActionType).
CALL_ACTIVITY, CALL_ACTIVITY_RETRY, CALL_SUB, CALL_SUB_RETRY = 0, 1, 2, 3
CONTINUE_AS_NEW, CREATE_TIMER, WAIT_EVENT = 4, 5, 6
UNSUPPORTED_ACTIONS = {7: "call_entity", 8: "call_http", 9: "signal_entity"}


def valid_instance_id(instance_id: str) -> bool:
    """Azure's rule: at most 100 characters, none of / \\ # ? or control characters."""
    return (
        0 < len(instance_id) <= MAX_INSTANCE_ID_LENGTH
        and not any(c in instance_id for c in "/\\#?")
        and not any(ord(c) < 32 for c in instance_id)
    )


def load_app(spec: str) -> Any:
    """`module:attribute` → the function app object."""
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute or "app")


def _event(kind: int, moment: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "EventType": kind,
        "EventId": -1,
        "IsPlayed": False,
        "Timestamp": timestamp(moment),
        **fields,
    }


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _flatten(actions: list[Any]) -> list[dict[str, Any]]:
    """The SDK's (schema V2) action list as atomic actions in order: the order task ids
    are handed out in."""
    flat: list[dict[str, Any]] = []
    for action in actions:
        if isinstance(action, list):
            flat.extend(_flatten(action))
        elif action.get("actionType") in (11, 12):  # WhenAny / WhenAll
            flat.extend(_flatten(action.get("compoundActions") or []))
        else:
            flat.append(action)
    return flat


# --- worker processes ---------------------------------------------------------------------

_worker_activities: dict[str, Any] = {}


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the host thread that started it goes (a host killed
    with SIGKILL must not leave activities running that nobody will record)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_init(app_spec: str) -> None:
    _die_with_parent()
    # Ctrl-C reaches the whole process group: the host decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    app = load_app(app_spec)
    for fn in app.get_functions():
        if fn.get_trigger().get_binding_name() == "activityTrigger":
            _worker_activities[fn.get_function_name()] = fn


def _worker_ready() -> int:
    time.sleep(0.1)  # so that each worker takes one of the warm-up calls
    return os.getpid()


def run_activity(name: str, input_json: str | None) -> tuple[bool, str | None, str | None]:
    """Run one activity in this process the way the Python worker does: (True, result JSON,
    None) or (False, reason, details)."""
    from azure.functions import meta
    from azure.functions.durable_functions import ActivityTriggerConverter

    fn = _worker_activities.get(name)
    if fn is None:
        return False, f"Activity function '{name}' does not exist", ""
    try:
        arg = ActivityTriggerConverter.decode(
            meta.Datum(type="json", value=input_json), trigger_metadata=None
        )
        result = fn.get_user_function()(**{fn.get_trigger().name: arg})
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return True, ActivityTriggerConverter.encode(result, expected_type=None).value, None
    except Exception as exc:
        reason = f"Activity function '{name}' failed: {type(exc).__name__}: {exc}"
        # The user's frames only, as the Functions host reports them.
        details = "".join(traceback.format_exception(exc.with_traceback(exc.__traceback__.tb_next)))
        return False, reason, details


# --- the runtime --------------------------------------------------------------------------


@dataclass
class Stats:
    """Where the executor's time goes (seconds), for the overhead measurements."""

    episodes: int = 0
    events: int = 0
    episode_read: float = 0.0  # claim, messages, history
    episode_replay: float = 0.0  # the SDK's replay of the orchestrator
    episode_write: float = 0.0  # history, work items, messages, status, commit
    activities: int = 0
    activity_claim: float = 0.0  # finding and locking a work item
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
    item: Any
    conn: sa.Connection
    tx: sa.Transaction
    started: float
    future: Future[Any] | None = None
    pool: ProcessPoolExecutor | None = None


@dataclass
class _EpisodeResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    messages: list[tuple[str, dict[str, Any], datetime]] = field(default_factory=list)
    work: list[dict[str, Any]] = field(default_factory=list)
    children: list[dict[str, Any]] = field(default_factory=list)


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
        self.app_spec = app_spec
        self.hub_name = hub_name
        self.workers = workers or os.cpu_count() or 1
        self.poll_interval = poll_interval
        self.stats = Stats()
        from dtbase_core.db import create_db_engine

        self.engine = create_db_engine(
            database_url, pool_size=self.workers + 4, max_overflow=self.workers + 4
        )
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._results: queue.Queue[_Running] = queue.Queue()
        self._running: dict[int, _Running] = {}
        self._pool: ProcessPoolExecutor | None = None
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

    def _start_pool(self) -> None:
        if not self.activities:
            return
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.app_spec,),
        )
        # Submitted together, so the pool spawns every worker now, not one by one on
        # demand; and again until every worker has answered, so each has imported the app
        # (its initializer ran): a fan-out then starts on all cores at once.
        deadline = time.monotonic() + 120
        ready: set[int] = set()
        while len(ready) < self.workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(ready)} of {self.workers} workers started")
            batch = [self._pool.submit(_worker_ready) for _ in range(self.workers)]
            ready.update(future.result(timeout=120) for future in batch)
        log.info("durable worker pool ready: %d processes", len(ready))

    def _main(self) -> None:
        try:
            self._start_pool()
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
                    busy = self._step()
                    wait = 0.0 if busy else self._idle_wait()
                except Exception:  # the database went away, say: try again shortly
                    log.exception("durable dispatcher step failed")
                    wait = self.poll_interval
                if wait > 0:
                    self._wake.wait(wait)
                    self._wake.clear()
        finally:
            self._shutdown_pool()

    def _log_recovery(self) -> None:
        """Say what an earlier host left: activities it claimed but never recorded run
        again now (their row locks went with its connection), and instances go on."""
        with self.engine.connect() as conn:
            running = conn.scalar(
                sa.select(sa.func.count())
                .select_from(store.instance)
                .where(
                    store.instance.c.name.in_(list(self.orchestrators)),
                    store.instance.c.status.in_(store.RUNNING),
                )
            )
            queued = conn.scalar(
                sa.select(sa.func.count())
                .select_from(store.work_item)
                .where(store.work_item.c.name.in_(list(self.activities)))
            )
        if running:
            log.warning(
                "durable: resuming %d unfinished instance(s), %d activity run(s) queued",
                running,
                queued,
            )

    def _shutdown_pool(self) -> None:
        for running in list(self._running.values()):
            with contextlib.suppress(Exception):
                running.tx.rollback()
                running.conn.close()
        self._running.clear()
        if self._pool is not None:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:  # a long activity is not waited for: it runs again
                with contextlib.suppress(Exception):
                    process.terminate()
            self._pool = None

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
        while self._pool is not None and len(self._running) < self.workers:
            if not self._claim_activity():
                break
            busy = True
        return busy

    # -- activities --------------------------------------------------------------------

    def _claim_activity(self) -> bool:
        started = time.perf_counter()
        conn = self.engine.connect()
        tx = conn.begin()
        try:
            item = store.claim_work_item(conn, list(self.activities))
        except Exception:
            tx.rollback()
            conn.close()
            raise
        if item is None:
            tx.rollback()
            conn.close()
            return False
        running = _Running(item=item, conn=conn, tx=tx, started=time.perf_counter())
        self.stats.activity_claim += running.started - started
        assert self._pool is not None
        try:
            running.future = self._pool.submit(run_activity, item.name, item.input)
        except BrokenProcessPool:
            self._restart_pool()
            assert self._pool is not None
            running.future = self._pool.submit(run_activity, item.name, item.input)
        running.pool = self._pool
        self._running[item.id] = running

        def done(_: Future[Any]) -> None:
            self._results.put(running)
            self._wake.set()

        running.future.add_done_callback(done)
        return True

    def _restart_pool(self) -> None:
        log.warning("durable worker pool broke; starting a new one")
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._start_pool()

    def _record(self, running: _Running) -> None:
        finished = time.perf_counter()
        self.stats.activity_run += finished - running.started
        self._running.pop(running.item.id, None)
        item, conn, tx = running.item, running.conn, running.tx
        assert running.future is not None
        try:
            ok, value, details = running.future.result()
        except BrokenProcessPool as exc:
            # A worker died (os._exit, a crash, the OOM killer): every activity the pool
            # was running fails, as on Azure when the worker process goes; a new pool
            # takes the next ones.
            ok, value, details = False, f"Activity function '{item.name}' failed: {exc}", ""
            if running.pool is self._pool:
                self._restart_pool()
        except Exception as exc:
            ok, value, details = False, f"Activity function '{item.name}' failed: {exc!r}", ""
        now = utcnow()
        if ok:
            event = _event(TASK_COMPLETED, now, TaskScheduledId=item.task_id, Result=value)
        else:
            event = _event(
                TASK_FAILED, now, TaskScheduledId=item.task_id, Reason=value, Details=details
            )
        try:
            store.add_message_if_running(conn, item.instance_id, item.execution_id, event, now)
            store.delete_work_item(conn, item.id)
            tx.commit()
        finally:
            conn.close()
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
                    written, replay_seconds = self._episode(conn, row, messages, past, now)
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
        self.stats.episode_replay += replay_seconds
        self.stats.history_events_read += len(past)
        self.stats.history_events_written += written
        self.stats.episode_write += time.perf_counter() - t1 - replay_seconds
        self.stats.episodes += 1
        return True

    def _episode(
        self,
        conn: sa.Connection,
        row: Any,
        messages: list[Any],
        past: list[dict[str, Any]],
        now: datetime,
    ) -> tuple[int, float]:
        """Replay one episode of an instance; returns (history events written, seconds
        spent in the SDK)."""
        state: dict[str, Any] = {
            "next_id": 0,
            "seen": 0,
            "retries": {},
            "retry_tasks": {},
            "retry_timers": {},
            "timers": {},
            **(row.state or {}),
        }
        ordered = sorted(messages, key=lambda m: m.event["EventType"] != EXECUTION_STARTED)
        if state["retry_tasks"] or state["retry_timers"]:
            ordered = ordered[:1]  # hidden retry ids: one event at a time (module docstring)
        if not past and (not ordered or ordered[0].event["EventType"] != EXECUTION_STARTED):
            # Events for an instance whose ExecutionStarted is not yet due: wait for it.
            return 0, 0.0
        store.delete_messages(conn, [m.id for m in ordered])
        self.stats.events += len(ordered)
        out = _EpisodeResult()
        started = _event(ORCHESTRATOR_STARTED, now)
        new_events = [started] + [dict(m.event, IsPlayed=False) for m in ordered]
        for event in new_events[1:]:
            self._hidden_ids(row, state, event, now, out)

        context = {
            "history": [*past, *new_events],
            "instanceId": row.instance_id,
            "isReplaying": False,
            "parentInstanceId": row.parent_instance_id,
            "input": row.input,
            "upperSchemaVersion": 1,  # ReplaySchema.V2: one flat action list
        }
        handle = self.orchestrators[row.name].get_user_function()
        replay_started = time.perf_counter()
        error: str | None = None
        try:
            result = json.loads(handle(json.dumps(context)))
        except Exception as exc:
            text = str(exc)
            message, marker, data = text.partition("\n\n$OutOfProcData$:")
            result = json.loads(data) if marker else {"isDone": False, "actions": []}
            error = result.get("error") or message or type(exc).__name__
        replay_seconds = time.perf_counter() - replay_started

        actions = _flatten(result.get("actions") or [])
        continued: dict[str, Any] | None = None
        for index in range(state["seen"], len(actions)):
            action = actions[index]
            kind = action.get("actionType")
            if kind == CONTINUE_AS_NEW:
                continued = action
            elif kind in UNSUPPORTED_ACTIONS and error is None:
                error = f"{UNSUPPORTED_ACTIONS[kind]} is not supported by the local host"
            elif kind != WAIT_EVENT:
                self._schedule(row, state, index, action, now, out)
        state["seen"] = len(actions)
        self._cancel_timers(conn, row, state, actions)

        history = [dict(e, IsPlayed=True) for e in new_events] + out.history
        values: dict[str, Any] = {"last_updated_time": now, "status": "Running"}
        if "customStatus" in result:
            values["custom_status"] = json.dumps(result["customStatus"])
        finished: tuple[str, str | None] | None = None
        if error is not None:
            output = json.dumps(f"Orchestrator function '{row.name}' failed: {error}")
            finished = ("Failed", output)
        elif result.get("isDone") and continued is not None:
            self._continue_as_new(conn, row, continued, now, values)
            return 0, replay_seconds
        elif result.get("isDone"):
            finished = ("Completed", json.dumps(result.get("output")))
        history.append(_event(ORCHESTRATOR_COMPLETED, now))
        if finished is not None:
            status, output = finished
            history.append(
                _event(EXECUTION_COMPLETED, now, OrchestrationStatus=status, Result=output)
            )
            values.update(status=status, output=output)
            out.messages.extend(self._notify_parent(row, status, output, error, now))
            out.work.clear()
            out.children.clear()
            out.messages[:] = [m for m in out.messages if m[0] != row.instance_id]
        values["state"] = state

        for child in out.children:
            store.insert_instance(conn, **child)
        store.append_history(conn, row.instance_id, len(past), [*history])
        store.add_work_items(conn, out.work)
        for target, event, visible in out.messages:
            if target == row.instance_id:
                store.add_messages(conn, [(target, event, visible)])
            else:
                parent_execution = (row.state or {}).get("parent_execution")
                store.add_message_if_running(conn, target, parent_execution, event, visible)
        if finished is not None:
            store.end_instance_work(conn, row.instance_id)
        store.update_instance(conn, row.instance_id, **values)
        return len(history), replay_seconds

    def _fail(self, row: Any, error: str) -> None:
        """An episode the executor itself could not run: the instance fails (rather than
        being retried for ever)."""
        now = utcnow()
        output = json.dumps(f"Orchestrator function '{row.name}' failed: {error}")
        with self.engine.begin() as conn:
            current = store.get_instance(conn, row.instance_id, lock=True)
            if current is None or current.status in store.TERMINAL:
                return
            store.end_instance_work(conn, row.instance_id)
            store.update_instance(
                conn, row.instance_id, status="Failed", output=output, last_updated_time=now
            )
            for target, event, visible in self._notify_parent(row, "Failed", None, error, now):
                parent_execution = (row.state or {}).get("parent_execution")
                store.add_message_if_running(conn, target, parent_execution, event, visible)

    def _new_id(self, state: dict[str, Any]) -> int:
        task_id = int(state["next_id"])
        state["next_id"] = task_id + 1
        return task_id

    def _hidden_ids(
        self,
        row: Any,
        state: dict[str, Any],
        event: dict[str, Any],
        now: datetime,
        out: _EpisodeResult,
    ) -> None:
        """Mirror the ids `call_*_with_retry` takes as the SDK processes this event."""
        kind = event["EventType"]
        if kind in (TASK_COMPLETED, SUB_COMPLETED, TASK_FAILED, SUB_FAILED):
            key = state["retry_tasks"].pop(str(event.get("TaskScheduledId")), None)
            if key is None or kind in (TASK_COMPLETED, SUB_COMPLETED):
                return
            retry = state["retries"][key]
            timer_id = self._new_id(state)
            options = retry["options"]
            last = retry["attempt"] >= int(options.get("maxNumberOfAttempts", 1))
            delay = 0 if last else int(options.get("firstRetryIntervalInMilliseconds", 0))
            fire_at = now + timedelta(milliseconds=delay)
            out.history.append(
                _event(TIMER_CREATED, now, EventId=timer_id, FireAt=timestamp(fire_at))
            )
            fired = _event(TIMER_FIRED, fire_at, TimerId=timer_id, FireAt=timestamp(fire_at))
            out.messages.append((row.instance_id, fired, fire_at))
            state["retry_timers"][str(timer_id)] = key
        elif kind == TIMER_FIRED:
            timer = str(event.get("TimerId"))
            state["timers"] = {k: v for k, v in state["timers"].items() if str(v) != timer}
            key = state["retry_timers"].pop(timer, None)
            if key is None:
                return
            retry = state["retries"][key]
            if retry["attempt"] >= int(retry["options"].get("maxNumberOfAttempts", 1)):
                state["retries"].pop(key, None)  # the SDK now fails the task
                return
            retry["attempt"] += 1
            task_id = self._new_id(state)
            state["retry_tasks"][str(task_id)] = key
            self._start_task(row, retry["action"], task_id, now, out)

    def _schedule(
        self,
        row: Any,
        state: dict[str, Any],
        index: int,
        action: dict[str, Any],
        now: datetime,
        out: _EpisodeResult,
    ) -> None:
        kind = action["actionType"]
        task_id = self._new_id(state)
        if kind == CREATE_TIMER:
            fire_at = _parse_time(action["fireAt"])
            stamp = timestamp(fire_at)
            out.history.append(_event(TIMER_CREATED, now, EventId=task_id, FireAt=stamp))
            fired = _event(TIMER_FIRED, fire_at, TimerId=task_id, FireAt=stamp)
            out.messages.append((row.instance_id, fired, fire_at))
            state["timers"][str(index)] = task_id
            return
        if kind in (CALL_ACTIVITY_RETRY, CALL_SUB_RETRY):
            key = str(task_id)
            state["retries"][key] = {
                "attempt": 1,
                "options": action.get("retryOptions") or {},
                "action": action,
            }
            state["retry_tasks"][str(task_id)] = key
        self._start_task(row, action, task_id, now, out)

    def _start_task(
        self,
        row: Any,
        action: dict[str, Any],
        task_id: int,
        now: datetime,
        out: _EpisodeResult,
    ) -> None:
        name = action.get("functionName")
        input_json = action.get("input")
        if action["actionType"] in (CALL_ACTIVITY, CALL_ACTIVITY_RETRY):
            out.history.append(
                _event(TASK_SCHEDULED, now, EventId=task_id, Name=name, Input=input_json)
            )
            if name not in self.activities:
                # As the Functions host does: the orchestrator sees a failed task.
                failed = _event(
                    TASK_FAILED,
                    now,
                    TaskScheduledId=task_id,
                    Reason=f"The function '{name}' doesn't exist, is disabled, or is not "
                    "an activity function.",
                    Details="",
                )
                out.messages.append((row.instance_id, failed, now))
                return
            out.work.append(
                {
                    "instance_id": row.instance_id,
                    "execution_id": row.execution_id,
                    "task_id": task_id,
                    "name": name,
                    "input": input_json,
                    "created_time": now,
                }
            )
            return
        child_id = action.get("instanceId") or f"{row.instance_id}:{task_id}"
        out.history.append(
            _event(
                SUB_CREATED,
                now,
                EventId=task_id,
                Name=name,
                InstanceId=child_id,
                Input=input_json,
            )
        )
        reason = None
        if name not in self.orchestrators:
            reason = (
                f"The function '{name}' doesn't exist, is disabled, or is not an "
                "orchestrator function."
            )
        elif not valid_instance_id(child_id):
            reason = f"Invalid instance id: {child_id!r}"
        if reason is not None:
            failed = _event(SUB_FAILED, now, TaskScheduledId=task_id, Reason=reason, Details="")
            out.messages.append((row.instance_id, failed, now))
            return
        out.children.append(
            {
                "instance_id": child_id,
                "name": name,
                "input_json": input_json,
                "now": now,
                "execution_id": uuid.uuid4().hex,
                "parent_instance_id": row.instance_id,
                "parent_task_id": task_id,
                "state": {"parent_execution": row.execution_id},
            }
        )

    def _cancel_timers(
        self, conn: sa.Connection, row: Any, state: dict[str, Any], actions: list[Any]
    ) -> None:
        """A timer the orchestrator cancelled (the task_any timeout pattern) never fires."""
        for index, timer_id in list(state["timers"].items()):
            if int(index) < len(actions) and actions[int(index)].get("isCanceled"):
                conn.execute(
                    sa.delete(store.message).where(
                        store.message.c.instance_id == row.instance_id,
                        store.message.c.event["EventType"].as_integer() == TIMER_FIRED,
                        store.message.c.event["TimerId"].as_integer() == int(timer_id),
                    )
                )
                del state["timers"][index]

    def _notify_parent(
        self, row: Any, status: str, output: str | None, error: str | None, now: datetime
    ) -> list[tuple[str, dict[str, Any], datetime]]:
        if not row.parent_instance_id:
            return []
        if status == "Completed":
            event = _event(SUB_COMPLETED, now, TaskScheduledId=row.parent_task_id, Result=output)
        else:
            reason = f"Sub-orchestration '{row.name}' ({row.instance_id}) {status.lower()}"
            event = _event(
                SUB_FAILED,
                now,
                TaskScheduledId=row.parent_task_id,
                Reason=f"{reason}: {error}" if error else reason,
                Details="",
            )
        return [(row.parent_instance_id, event, now)]

    def _continue_as_new(
        self,
        conn: sa.Connection,
        row: Any,
        action: dict[str, Any],
        now: datetime,
        values: dict[str, Any],
    ) -> None:
        store.reset_for_new_execution(conn, row.instance_id)
        input_json = action.get("input")
        store.add_messages(
            conn, [(row.instance_id, store.execution_started(row.name, input_json, now), now)]
        )
        keep = {k: v for k, v in (row.state or {}).items() if k == "parent_execution"}
        values.update(input=input_json, execution_id=uuid.uuid4().hex, state=keep)
        store.update_instance(conn, row.instance_id, **values)

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
            if existing is not None and existing.status in store.RUNNING:
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
            if row.status in store.TERMINAL:
                return 410
            event = _event(EVENT_RAISED, now, Name=event_name, Input=data_json)
            store.add_message_if_running(conn, instance_id, None, event, now)
        self.wake()
        return 202

    def terminate(self, instance_id: str, reason: str | None) -> int:
        """202 terminated, 404 unknown, 410 already ended."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = store.get_instance(conn, instance_id, lock=True)
            if row is None:
                return 404
            if row.status in store.TERMINAL:
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
                    dict(_event(EXECUTION_TERMINATED, now, Input=reason), IsPlayed=True),
                    dict(
                        _event(
                            EXECUTION_COMPLETED,
                            now,
                            OrchestrationStatus="Terminated",
                            Result=output,
                        ),
                        IsPlayed=True,
                    ),
                ],
            )
            store.end_instance_work(conn, instance_id)
            store.update_instance(
                conn, instance_id, status="Terminated", output=output, last_updated_time=now
            )
            for target, event, visible in self._notify_parent(row, "Terminated", None, reason, now):
                parent_execution = (row.state or {}).get("parent_execution")
                store.add_message_if_running(conn, target, parent_execution, event, visible)
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


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _status_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_json(
    row: Any, events: list[dict[str, Any]] | None, show_output: bool, show_input: bool
) -> dict[str, Any]:
    """The instance as Durable's HTTP API reports it."""
    body: dict[str, Any] = {
        "name": row.name,
        "instanceId": row.instance_id,
        "runtimeStatus": row.status,
        "input": _loads(row.input) if show_input else None,
        "customStatus": _loads(row.custom_status),
        "output": _loads(row.output),
        "createdTime": _status_time(row.created_time),
        "lastUpdatedTime": _status_time(row.last_updated_time),
    }
    if events is not None:
        body["historyEvents"] = history_json(events, show_output)
    return body


def history_json(events: list[dict[str, Any]], show_output: bool) -> list[dict[str, Any]]:
    """History as the status API shows it: the scheduling events folded into the events
    that complete them (FunctionName, ScheduledTime), episodes' markers left out."""
    scheduled: dict[int, dict[str, Any]] = {}
    shown: list[dict[str, Any]] = []
    for event in events:
        kind = event["EventType"]
        if kind in (TASK_SCHEDULED, SUB_CREATED, TIMER_CREATED):
            scheduled[event["EventId"]] = event
            continue
        if kind in (ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED):
            continue
        item: dict[str, Any] = {"EventType": EVENT_NAMES.get(kind, str(kind))}
        if kind == EXECUTION_STARTED:
            item["FunctionName"] = event.get("Name")
        elif kind in (TASK_COMPLETED, TASK_FAILED, SUB_COMPLETED, SUB_FAILED):
            origin = scheduled.get(event.get("TaskScheduledId"), {})
            item["FunctionName"] = origin.get("Name")
            if origin.get("InstanceId"):
                item["InstanceId"] = origin["InstanceId"]
            if kind in (TASK_COMPLETED, SUB_COMPLETED) and show_output:
                item["Result"] = _loads(event.get("Result"))
            if kind in (TASK_FAILED, SUB_FAILED):
                item["Reason"] = event.get("Reason")
                item["Details"] = event.get("Details")
            if origin:
                item["ScheduledTime"] = origin["Timestamp"]
        elif kind == TIMER_FIRED:
            item["FireAt"] = event.get("FireAt")
        elif kind == EVENT_RAISED:
            item["Name"] = event.get("Name")
            if show_output:
                item["Input"] = _loads(event.get("Input"))
        elif kind == EXECUTION_COMPLETED:
            item["OrchestrationStatus"] = event.get("OrchestrationStatus")
            if show_output:
                item["Result"] = _loads(event.get("Result"))
        elif kind == EXECUTION_TERMINATED:
            item["Input"] = event.get("Input")
        item["Timestamp"] = event["Timestamp"]
        shown.append(item)
    return shown


# --- the durable client binding and the HTTP management API -------------------------------


def management_urls(origin: str, hub_name: str, instance_id: str = "INSTANCEID") -> dict[str, str]:
    """The URLs `create_check_status_response` hands out, as the Durable extension forms
    them (no function key locally)."""
    base = f"{origin.rstrip('/')}{WEBHOOK_PREFIX}instances/{instance_id}"
    query = f"taskHub={hub_name}&connection=Storage"
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{base}?{query}",
        "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{base}/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{base}/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{base}?{query}",
        "restartPostUri": f"{base}/restart?{query}",
        "suspendPostUri": f"{base}/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{base}/resume?reason={{text}}&{query}",
    }


def client_binding(origin: str, hub_name: str = DEFAULT_HUB) -> str:
    """The `durableClient` binding's JSON for a function on the host at `origin`."""
    orchestrators = f"{origin.rstrip('/')}{WEBHOOK_PREFIX}orchestrators/{{functionName}}"
    return json.dumps(
        {
            "taskHubName": hub_name,
            "creationUrls": {
                "createNewInstancePostUri": f"{orchestrators}[/{{instanceId}}]",
                "createAndWaitOnNewInstancePostUri": (
                    f"{orchestrators}[/{{instanceId}}]?timeout={{timeoutInSeconds}}"
                    "&pollingInterval={intervalInSeconds}"
                ),
            },
            "managementUrls": management_urls(origin, hub_name),
            "rpcBaseUrl": f"{origin.rstrip('/')}{WEBHOOK_PREFIX}",
        }
    )


def durable_client_names(fn: Any) -> list[str]:
    return [b.name for b in fn.get_bindings() if b.type == "durableClient"]


def _origin(scope: dict[str, Any]) -> str:
    for key, value in scope.get("headers", []):
        if key == b"host":
            return f"{scope.get('scheme', 'http')}://{value.decode('latin-1')}"
    host, port = scope.get("server") or ("127.0.0.1", 80)
    return f"{scope.get('scheme', 'http')}://{host}:{port}"


def _loopback_origin(scope: dict[str, Any]) -> str:
    """The host as the host itself reaches it: the SDK's client calls back here."""
    host, port = scope.get("server") or ("127.0.0.1", 7071)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def bindings_for(fn: Any, scope: dict[str, Any], hub_name: str = DEFAULT_HUB) -> dict[str, str]:
    """`FunctionHost(extra_bindings=...)`: the durable client binding, where declared."""
    names = durable_client_names(fn)
    if not names:
        return {}
    binding = client_binding(_loopback_origin(scope), hub_name)
    return dict.fromkeys(names, binding)


def _body_input(body: bytes) -> str | None:
    """The SDK posts its input JSON once more encoded as a JSON string; a plain client
    posts the JSON itself. Either way: the input's JSON text, or None."""
    if not body.strip():
        return None
    value = json.loads(body)
    if isinstance(value, str):
        try:
            json.loads(value)
            return value
        except ValueError:
            return json.dumps(value)
    return json.dumps(value)


class ManagementApi:
    """ASGI handler for `/runtime/webhooks/durabletask/`: the subset of Durable's HTTP API
    the SDK's client and the starters' status URLs use."""

    def __init__(self, runtime: DurableRuntime) -> None:
        self.runtime = runtime

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from local.host import _json_reply, _read_body, _reply

        method = scope["method"].upper()
        parts = [unquote(p) for p in scope["path"][len(WEBHOOK_PREFIX) :].split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        try:
            body = await _read_body(receive)
        except ValueError:
            await _json_reply(send, 413, {"Message": "Request body too large"})
            return
        rt = self.runtime
        try:
            if parts[:1] == ["orchestrators"] and len(parts) in (2, 3) and method == "POST":
                name, instance_id = parts[1], (parts[2] if len(parts) == 3 else None)
                try:
                    input_json = _body_input(body)
                    created = await asyncio.to_thread(rt.start_new, name, instance_id, input_json)
                except (LookupError, ValueError) as exc:
                    await _json_reply(send, 400, {"ExceptionMessage": str(exc).strip("'\"")})
                    return
                except FileExistsError as exc:
                    await _json_reply(send, 409, {"ExceptionMessage": str(exc)})
                    return
                payload = management_urls(_origin(scope), rt.hub_name, created)
                headers = [
                    (b"content-type", b"application/json"),
                    (b"location", payload["statusQueryGetUri"].encode()),
                    (b"retry-after", b"10"),
                ]
                await _reply(send, 202, headers, json.dumps(payload).encode())
                return
            if parts == ["instances"] and method == "GET":
                statuses = query.get("runtimeStatus")
                wanted = statuses.split(",") if statuses else None
                listed = await asyncio.to_thread(rt.list_status, wanted)
                await _json_reply(send, 200, listed)
                return
            if parts[:1] != ["instances"] or len(parts) < 2:
                await _json_reply(send, 404, {"Message": "Not Found"})
                return
            instance_id = parts[1]
            if len(parts) == 2 and method == "GET":
                await self._status(scope, send, instance_id, query)
            elif len(parts) == 2 and method == "DELETE":
                deleted = await asyncio.to_thread(rt.purge, instance_id)
                await _json_reply(send, 200 if deleted else 404, {"instancesDeleted": deleted})
            elif len(parts) == 4 and parts[2] == "raiseEvent" and method == "POST":
                try:
                    data = json.dumps(json.loads(body)) if body.strip() else None
                except ValueError:
                    await _json_reply(
                        send, 400, {"Message": "Only application/json request content is supported"}
                    )
                    return
                code = await asyncio.to_thread(rt.raise_event, instance_id, parts[3], data)
                await _reply(send, code, [(b"content-type", b"application/json")], b"")
            elif len(parts) == 3 and parts[2] == "terminate" and method == "POST":
                code = await asyncio.to_thread(rt.terminate, instance_id, query.get("reason"))
                await _reply(send, code, [(b"content-type", b"application/json")], b"")
            elif len(parts) == 3 and parts[2] in ("rewind", "suspend", "resume", "restart"):
                await _json_reply(
                    send, 501, {"Message": f"{parts[2]} is not supported by the local host"}
                )
            else:
                await _json_reply(send, 404, {"Message": "Not Found"})
        except Exception:
            log.exception("durable management API failed")
            await _json_reply(send, 500, {"Message": "Internal Server Error"})

    async def _status(
        self, scope: dict[str, Any], send: Any, instance_id: str, query: dict[str, str]
    ) -> None:
        from local.host import _reply

        def flag(name: str, default: bool) -> bool:
            value = query.get(name)
            return default if value is None else value.lower() == "true"

        found = await asyncio.to_thread(
            self.runtime.status,
            instance_id,
            show_history=flag("showHistory", False),
            show_history_output=flag("showHistoryOutput", False),
            show_input=flag("showInput", True),
        )
        if found is None:
            # A JSON string: the SDK's get_status turns it into a status with a message.
            message = json.dumps(f"No instance with ID '{instance_id}' found.")
            await _reply(send, 404, [(b"content-type", b"application/json")], message.encode())
            return
        status = found["runtimeStatus"]
        headers = [(b"content-type", b"application/json")]
        if status in store.RUNNING:
            code = 202
            url = _origin(scope) + scope["path"]
            if scope.get("query_string"):
                url += "?" + scope["query_string"].decode("latin-1")
            headers += [(b"location", url.encode()), (b"retry-after", b"10")]
        elif status == "Failed" and flag("returnInternalServerErrorOnFailure", False):
            code = 500
        else:
            code = 200
        await _reply(send, code, headers, json.dumps(found).encode())
