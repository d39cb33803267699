"""Durable Functions on the local host (local/durable/), with the test app
tests/durable_app.py, against a real PostgreSQL.

First the executor in this process (fan-out, failures, retry, timers, external events,
terminate, sub-orchestrations, continue_as_new, two executors sharing the work, and the
overhead per episode and per activity); then the local host in a subprocess, through
the SDK's own DurableOrchestrationClient and through plain HTTP polling of the status
URLs; then a host killed with SIGKILL in the middle of a fan-out, and a second host
finishing the instance.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import httpx
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from local.cli import migrate
from local.durable import WEBHOOK_PREFIX, DurableRuntime, client_binding
from local.durable import store as durable_store
from local.durable.migrations import VERSION_TABLE
from local.secrets import SYSTEM_KEY
from tests.support import ROOT, LocalHost, TestDatabase, free_port, host_environment, wait_ready

APP_SPEC = "tests.durable_app:app"
NEVER = "0 0 0 1 1 *"  # the tick timer's schedule when a test does not want it


@functools.cache
def app_functions() -> list[Any]:
    """The test app's functions (get_functions() may be called once per app)."""
    from tests.durable_app import app

    return app.get_functions()


def new_runtime(database: TestDatabase, **kw: Any) -> DurableRuntime:
    return DurableRuntime(app_functions(), database_url=database.url, app_spec=APP_SPEC, **kw)


def wait_done(rt: DurableRuntime, instance_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = rt.status(instance_id, show_history=True, show_history_output=True)
        assert status is not None
        if status["runtimeStatus"] not in ("Pending", "Running"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.02)


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(interval)


def event_types(status: dict[str, Any]) -> list[str]:
    return [e["EventType"] for e in status["historyEvents"]]


def nothing_left(database: TestDatabase, instance_id: str) -> tuple[int, int]:
    """(queued messages, work items) an instance still has."""
    with database.engine.connect() as conn:
        messages = conn.scalar(
            sa.select(sa.func.count())
            .select_from(durable_store.message)
            .where(durable_store.message.c.instance_id == instance_id)
        )
        work = conn.scalar(
            sa.select(sa.func.count())
            .select_from(durable_store.work_item)
            .where(durable_store.work_item.c.instance_id == instance_id)
        )
    return int(messages or 0), int(work or 0)


@pytest.fixture(scope="module")
def migrated(database: TestDatabase) -> TestDatabase:
    migrate(database.url)
    return database


def test_the_store_matches_its_migration(migrated: TestDatabase) -> None:
    def durable_only(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "table" or bool(name and name.startswith("durable_"))

    with migrated.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_name": durable_only, "version_table": VERSION_TABLE}
        )
        assert compare_metadata(context, durable_store.metadata) == []


# --- the executor, in this process --------------------------------------------------------------


@pytest.fixture(scope="class")
def rt(migrated: TestDatabase) -> Iterator[DurableRuntime]:
    """One runtime for TestExecutor; it is stopped before the host tests below start theirs
    (two executors of the same app on one database would share the work)."""
    runtime = new_runtime(migrated)
    runtime.start()
    yield runtime
    runtime.stop()


class TestExecutor:
    def test_fan_out_completes_on_every_core(self, rt: DurableRuntime) -> None:
        started = time.monotonic()
        instance_id = rt.start_new("t_fan_out", None, json.dumps({"n": 6, "delay": 0.4}))
        status = wait_done(rt, instance_id)
        elapsed = time.monotonic() - started
        assert status["runtimeStatus"] == "Completed", status
        output = status["output"]
        assert output["squares"] == [0, 1, 4, 9, 16, 25]
        assert output["doubled_sum"] == 2 * 55
        assert status["customStatus"] == {"stage": "done", "n": 6}
        assert status["input"] == {"n": 6, "delay": 0.4}
        # Six 0.4 s CPU-bound activities: on every core at once, not one after another.
        cores = min(rt.workers, 6)
        assert len(output["pids"]) == cores
        assert os.getpid() not in output["pids"]
        # ...at the same time: some activities' runs overlap.
        spans = sorted(output["spans"])
        assert cores == 1 or any(b[0] < a[1] for a, b in itertools.pairwise(spans)), spans
        assert elapsed < 6 * 0.4 + 5, elapsed
        types = event_types(status)
        assert types.count("TaskCompleted") == 7
        assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionCompleted"
        completed = [e for e in status["historyEvents"] if e["EventType"] == "TaskCompleted"]
        assert {e["FunctionName"] for e in completed} == {"t_square", "t_async_double"}
        assert nothing_left_rt(rt, instance_id) == (0, 0)

    def test_coroutine_activities_run_at_once_in_the_host(self, rt: DurableRuntime) -> None:
        """Seen before: each activity took a worker process, so twelve calls waiting on the
        network ran two at a time on two cores. Coroutine activities share the host's
        activity loop, as the Python worker runs them concurrently on its own; each of
        these returns only once all twelve are in flight."""
        job = {"key": f"r{time.monotonic_ns()}", "n": 12, "timeout": 20}
        status = wait_done(rt, rt.start_new("t_rendezvous_fan_out", None, json.dumps(job)))
        assert status["runtimeStatus"] == "Completed", status
        assert status["output"] == [os.getpid()]  # the host, not a pool process
        assert rt.workers < 12

    def test_an_uncaught_activity_failure_fails_the_instance(self, rt: DurableRuntime) -> None:
        instance_id = rt.start_new("t_failing", None, json.dumps("the input"))
        status = wait_done(rt, instance_id)
        assert status["runtimeStatus"] == "Failed"
        output = status["output"]
        assert output.startswith(
            "Orchestrator function 't_failing' failed: Activity function 't_fail' failed: "
            "ValueError: boom: the input"
        ), output
        assert 'durable_app.py", line' in output  # the user's traceback
        assert "local/durable/" not in output  # not the runtime's frames
        failed = [e for e in status["historyEvents"] if e["EventType"] == "TaskFailed"]
        assert len(failed) == 1 and failed[0]["FunctionName"] == "t_fail"
        assert status["historyEvents"][-1]["OrchestrationStatus"] == "Failed"

    def test_a_failure_is_catchable_in_the_orchestrator(self, rt: DurableRuntime) -> None:
        status = wait_done(rt, rt.start_new("t_catching", None, None))
        assert status["runtimeStatus"] == "Completed"
        assert status["output"] == {
            "caught": "Activity function 't_fail' failed: ValueError: boom: caught "
        }

    def test_retry_until_success(self, rt: DurableRuntime, tmp_path: Path) -> None:
        attempts = tmp_path / "attempts"
        started = time.monotonic()
        job = {"path": str(attempts), "succeed_on": 3}
        status = wait_done(rt, rt.start_new("t_retry", None, json.dumps(job)))
        assert status["runtimeStatus"] == "Completed", status
        assert status["output"] == {"result": "ok after 3 attempts", "after": 42}
        assert len(attempts.read_text().splitlines()) == 3
        times = [float(t) for t in attempts.read_text().split()]
        # Attempts are 200 ms apart (first_retry_interval_in_milliseconds).
        assert all(b - a >= 0.19 for a, b in itertools.pairwise(times)), times
        assert time.monotonic() - started >= 0.4

    def test_retry_gives_up_after_the_last_attempt(
        self, rt: DurableRuntime, tmp_path: Path
    ) -> None:
        attempts = tmp_path / "attempts"
        job = {"path": str(attempts), "succeed_on": 10}
        status = wait_done(rt, rt.start_new("t_retry", None, json.dumps(job)))
        assert status["runtimeStatus"] == "Completed", status
        assert status["output"] == {
            "result": "gave up: Activity function 't_flaky' failed: RuntimeError: attempt 3 "
            "failed ",
            "after": 42,  # the task ids stayed in step with the SDK's hidden retry ids
        }
        assert len(attempts.read_text().splitlines()) == 3

    def test_a_timer_fires_in_real_time(self, rt: DurableRuntime) -> None:
        started = time.monotonic()
        status = wait_done(rt, rt.start_new("t_timer", None, "1.0"))
        elapsed = time.monotonic() - started
        assert status["runtimeStatus"] == "Completed"
        begun = datetime.fromisoformat(status["output"]["started"])
        resumed = datetime.fromisoformat(status["output"]["resumed"])
        assert resumed - begun >= timedelta(seconds=1)
        assert 1.0 <= elapsed < 6, elapsed
        assert "TimerFired" in event_types(status)

    def test_an_external_event(self, rt: DurableRuntime) -> None:
        instance_id = rt.start_new("t_approval", None, None)
        waiting = wait_for(
            lambda: (s := rt.status(instance_id)) and s["customStatus"] == "waiting for approval"
        )
        assert waiting
        time.sleep(0.3)
        assert rt.status(instance_id)["runtimeStatus"] == "Running"  # type: ignore[index]
        assert rt.raise_event(instance_id, "approve", json.dumps({"by": "ops"})) == 202
        status = wait_done(rt, instance_id)
        assert status["runtimeStatus"] == "Completed"
        assert status["output"] == {"approval": {"by": "ops"}}
        assert status["customStatus"] == "approved"
        raised = [e for e in status["historyEvents"] if e["EventType"] == "EventRaised"]
        assert raised[0]["Name"] == "approve" and raised[0]["Input"] == {"by": "ops"}
        assert rt.raise_event(instance_id, "approve", "1") == 410
        assert rt.raise_event("no-such-instance", "approve", "1") == 404

    def test_an_event_raised_before_the_wait_is_kept(self, rt: DurableRuntime) -> None:
        instance_id = rt.start_new("t_approval", None, None)
        assert rt.raise_event(instance_id, "approve", '"early"') == 202
        assert wait_done(rt, instance_id)["output"] == {"approval": "early"}

    def test_event_or_timeout(self, rt: DurableRuntime) -> None:
        timed_out = rt.start_new("t_approval_timeout", None, "0.3")
        approved = rt.start_new("t_approval_timeout", None, "30")
        time.sleep(0.2)
        assert rt.raise_event(approved, "approve", '"yes"') == 202
        assert wait_done(rt, approved, timeout=10)["output"] == {"approved": "yes"}
        assert wait_done(rt, timed_out, timeout=10)["output"] == "timed out"
        # The cancelled 30 s timer of the approved instance was dropped, not left queued.
        assert nothing_left_rt(rt, approved) == (0, 0)

    def test_terminate(self, rt: DurableRuntime) -> None:
        instance_id = rt.start_new("t_approval", None, None)
        wait_for(lambda: rt.status(instance_id)["runtimeStatus"] == "Running")  # type: ignore[index]
        assert rt.terminate(instance_id, "not needed") == 202
        status = rt.status(instance_id, show_history=True)
        assert status is not None
        assert (status["runtimeStatus"], status["output"]) == ("Terminated", "not needed")
        assert event_types(status)[-2:] == ["ExecutionTerminated", "ExecutionCompleted"]
        assert rt.terminate(instance_id, "again") == 410
        assert rt.raise_event(instance_id, "approve", "1") == 410
        assert rt.terminate("no-such-instance", "x") == 404
        time.sleep(0.3)  # nothing runs it any more
        assert rt.status(instance_id)["runtimeStatus"] == "Terminated"  # type: ignore[index]
        assert nothing_left_rt(rt, instance_id) == (0, 0)

    def test_sub_orchestrations(self, rt: DurableRuntime) -> None:
        instance_id = rt.start_new("t_parent", None, None)
        status = wait_done(rt, instance_id)
        assert status["runtimeStatus"] == "Completed", status
        assert status["output"]["sum"] == 40 + 2 + 1
        assert status["output"]["child_failure"] == (
            f"Sub-orchestration 't_child' ({instance_id}:2) failed: negative: -2 "
        )
        named = rt.status(f"{instance_id}-named")
        assert named is not None and named["output"] == 2
        assert rt.status(f"{instance_id}:2")["runtimeStatus"] == "Failed"  # type: ignore[index]

    def test_calls_that_cannot_be_made_fail_catchably(self, rt: DurableRuntime) -> None:
        status = wait_done(rt, rt.start_new("t_bad_calls", None, None))
        assert status["runtimeStatus"] == "Completed", status
        assert status["output"] == [
            "The function 't_nope' doesn't exist, is disabled, or is not an orchestrator "
            "function. ",
            "Invalid instance id: 'bad/id' ",
            "The function 't_nope_activity' doesn't exist, is disabled, or is not an "
            "activity function. ",
        ]

    def test_an_episode_the_executor_cannot_store_fails_only_its_instance(
        self, rt: DurableRuntime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(conn: Any, rows: list[dict[str, Any]]) -> None:
            raise RuntimeError("cannot queue work")

        with monkeypatch.context() as patch:
            patch.setattr(durable_store, "add_work_items", broken)
            status = wait_done(rt, rt.start_new("t_fan_out", None, json.dumps({"n": 2})))
        assert status["runtimeStatus"] == "Failed"
        assert status["output"] == (
            "Orchestrator function 't_fan_out' failed: RuntimeError: cannot queue work"
        )
        # Nothing of that episode was kept, and the executor goes on.
        assert event_types(status) == []
        status = wait_done(rt, rt.start_new("t_fan_out", None, json.dumps({"n": 2})))
        assert status["runtimeStatus"] == "Completed"

    def test_a_worker_process_that_dies_fails_its_activity(self, rt: DurableRuntime) -> None:
        status = wait_done(rt, rt.start_new("t_crashing", None, None))
        assert status["runtimeStatus"] == "Completed", status
        assert status["output"]["crashed"].startswith(
            "Activity function 't_crash' failed: A process in the process pool was terminated"
        )
        assert status["output"]["after"] == 8
        # The pool is whole again: a fan-out uses every worker.
        status = wait_done(rt, rt.start_new("t_fan_out", None, json.dumps({"n": 4})))
        assert status["output"]["squares"] == [0, 1, 4, 9]

    def test_a_timer_occurrence_is_claimed_once(self, rt: DurableRuntime) -> None:
        occurrence = datetime.now(UTC).replace(microsecond=0)
        assert rt.claim_timer("t_tick", occurrence) is True
        assert rt.claim_timer("t_tick", occurrence) is False
        assert rt.claim_timer("t_kickoff", occurrence) is True
        assert rt.claim_timer("t_tick", occurrence + timedelta(seconds=1)) is True

    def test_an_orchestrator_that_changes_its_calls_fails_as_on_azure(
        self, rt: DurableRuntime
    ) -> None:
        instance_id = rt.start_new("t_changing", None, None)
        status = wait_done(rt, instance_id)
        assert status["runtimeStatus"] == "Failed", status
        assert status["output"] == (
            "Orchestrator function 't_changing' failed: Non-Deterministic workflow detected: "
            "A previous execution of this orchestration scheduled an activity task with "
            "sequence ID 0 and name 't_square' (version ''), but the current replay "
            "execution instead scheduled an activity task named 't_async_double'. Was a "
            "change made to the orchestrator code after this instance had already started "
            "running?"
        )
        # Nothing the changed code asked for was run.
        ran = [e["FunctionName"] for e in status["historyEvents"] if "FunctionName" in e]
        assert ran == ["t_changing", "t_square"]
        assert event_types(status)[-1] == "ExecutionCompleted"
        assert nothing_left_rt(rt, instance_id) == (0, 0)

    def test_a_replay_that_leaves_out_a_call_fails(self, rt: DurableRuntime) -> None:
        status = wait_done(rt, rt.start_new("t_shrinking", None, None))
        assert status["runtimeStatus"] == "Failed", status
        assert status["output"] == (
            "Orchestrator function 't_shrinking' failed: Non-Deterministic workflow detected: "
            "A previous execution of this orchestration scheduled an activity task with "
            "sequence ID 0 and name 't_async_double' (version ''), but the current replay "
            "execution hasn't (yet?) scheduled this task. Was a change made to the "
            "orchestrator code after this instance had already started running?"
        )

    def test_no_transaction_holds_a_running_activity(
        self, rt: DurableRuntime, migrated: TestDatabase
    ) -> None:
        instance_id = rt.start_new("t_fan_out", None, json.dumps({"n": 2, "delay": 1.5}))
        items = durable_store.work_item

        def claimed() -> list[int]:
            with migrated.engine.connect() as conn:
                return list(
                    conn.scalars(
                        sa.select(items.c.id).where(
                            items.c.instance_id == instance_id, items.c.claimed_by == rt.host_id
                        )
                    )
                )

        running = wait_for(lambda: len(ids := claimed()) == 2 and ids)
        # Both rows can be locked at once while their activities run: nothing holds them.
        with migrated.engine.connect() as conn, conn.begin():
            locked = conn.scalars(
                sa.select(items.c.id).where(items.c.id.in_(running)).with_for_update(nowait=True)
            ).all()
        assert sorted(locked) == sorted(running)
        assert rt.status(instance_id)["runtimeStatus"] == "Running"  # type: ignore[index]
        status = wait_done(rt, instance_id)
        assert status["output"]["squares"] == [0, 1]
        assert nothing_left_rt(rt, instance_id) == (0, 0)

    def test_continue_as_new(self, rt: DurableRuntime) -> None:
        status = wait_done(rt, rt.start_new("t_counter", None, "0"))
        assert status["runtimeStatus"] == "Completed"
        assert status["output"] == {"count": 3}
        assert status["input"] == 3  # the last execution's input
        # Only the last execution's history is kept.
        assert event_types(status).count("ExecutionStarted") == 1

    def test_start_errors(self, rt: DurableRuntime) -> None:
        with pytest.raises(LookupError, match="t_nope"):
            rt.start_new("t_nope", None, None)
        with pytest.raises(ValueError, match="Invalid instance id"):
            rt.start_new("t_approval", "a/b", None)
        rt.start_new("t_approval", "fixed-id", None)
        with pytest.raises(FileExistsError, match="already exists"):
            rt.start_new("t_approval", "fixed-id", None)
        rt.terminate("fixed-id", "done")
        # An ended instance may be started again under its id.
        rt.start_new("t_approval", "fixed-id", json.dumps(2))
        status = rt.status("fixed-id", show_history=True)
        assert status is not None and status["input"] == 2
        assert "ExecutionTerminated" not in event_types(status)
        rt.terminate("fixed-id", "done")

    def test_overhead_of_a_fan_out_of_trivial_activities(self, rt: DurableRuntime) -> None:
        """Reported in the note: what one episode and one activity cost the executor."""
        wait_done(rt, rt.start_new("t_fan_out", None, json.dumps({"n": 10})))  # warm
        before = rt.stats.as_dict()
        started = time.perf_counter()
        instance_id = rt.start_new("t_fan_out", None, json.dumps({"n": 10}))
        status = wait_done(rt, instance_id)
        wall = time.perf_counter() - started
        assert status["output"]["squares"] == [x * x for x in range(10)]
        after = rt.stats.as_dict()
        d = {k: after[k] - before[k] for k in after}
        episodes, activities = d["episodes"], d["activities"]
        assert activities == 11
        per_episode = (d["episode_read"] + d["episode_replay"] + d["episode_write"]) / episodes
        per_activity = (d["activity_claim"] + d["activity_record"]) / activities
        report = {
            "wall_s": round(wall, 4),
            "episodes": episodes,
            "events": d["events"],
            "activities": activities,
            "history_events_read": d["history_events_read"],
            "history_events_written": d["history_events_written"],
            "per_episode_ms": {
                "read": round(1000 * d["episode_read"] / episodes, 2),
                "replay": round(1000 * d["episode_replay"] / episodes, 2),
                "write": round(1000 * d["episode_write"] / episodes, 2),
            },
            "per_activity_ms": {
                "claim": round(1000 * d["activity_claim"] / activities, 2),
                "record": round(1000 * d["activity_record"] / activities, 2),
                "pool_round_trip": round(1000 * d["activity_run"] / activities, 2),
            },
        }
        print("\nDURABLE OVERHEAD", json.dumps(report))
        # Events are batched: far fewer episodes than one per completion.
        assert episodes <= 8
        # Generous bounds (the machine may be busy): milliseconds, not seconds.
        assert per_episode < 0.25 and per_activity < 0.1, report
        assert wall < 10, report


def nothing_left_rt(rt: DurableRuntime, instance_id: str) -> tuple[int, int]:
    with rt.engine.connect() as conn:
        counts = []
        for table in (durable_store.message, durable_store.work_item):
            counts.append(
                int(
                    conn.scalar(
                        sa.select(sa.func.count())
                        .select_from(table)
                        .where(table.c.instance_id == instance_id)
                    )
                    or 0
                )
            )
    return counts[0], counts[1]


def test_two_executors_share_a_fan_out_without_running_anything_twice(
    migrated: TestDatabase,
) -> None:
    first, second = new_runtime(migrated, workers=1), new_runtime(migrated, workers=1)
    first.start()
    second.start()
    try:
        instance_id = first.start_new("t_fan_out", None, json.dumps({"n": 8, "delay": 0.4}))
        status = wait_done(second, instance_id)
        assert status["output"]["squares"] == [x * x for x in range(8)]
        # Both took activities, and every one of the 9 ran exactly once.
        assert first.stats.activities > 0 and second.stats.activities > 0
        assert first.stats.activities + second.stats.activities == 9
        assert len(status["output"]["pids"]) == 2
        assert first.stats.episodes + second.stats.episodes >= 2
    finally:
        first.stop()
        second.stop()


def test_the_work_item_of_a_host_that_died_is_claimed_again(migrated: TestDatabase) -> None:
    """A claim lasts while its host holds its liveness lock (a session advisory lock); a
    dead host's late result is not recorded."""
    store, now, instance_id = durable_store, datetime.now(UTC), "claimed-by-a-dead-host"
    activity = "t_no_runtime_runs_this"
    with migrated.engine.begin() as conn:
        store.insert_instance(
            conn,
            instance_id=instance_id,
            name="t_no_runtime_runs_this_either",
            input_json=None,
            now=now,
            execution_id="e" * 32,
        )
        store.update_instance(conn, instance_id, status="Running")
        store.add_work_items(
            conn,
            [
                {
                    "instance_id": instance_id,
                    "execution_id": "e" * 32,
                    "task_id": 0,
                    "name": activity,
                    "input": None,
                    "created_time": now,
                }
            ],
        )
    host = sa.create_engine(migrated.engine.url, poolclass=sa.NullPool).connect()
    assert store.lock_host(host, 111)
    host.commit()
    try:
        with migrated.engine.begin() as conn:
            first = store.claim_work_item(conn, [activity], 111)
        assert first is not None and first.claimed_by == 111
        with migrated.engine.begin() as conn:
            assert store.claim_work_item(conn, [activity], 222) is None  # its host is alive
    finally:
        host.close()  # the host dies: its lock goes with its connection
    with migrated.engine.begin() as conn:
        again = store.claim_work_item(conn, [activity], 222)
    assert again is not None and (again.id, again.claimed_by) == (first.id, 222)
    with migrated.engine.begin() as conn:
        assert store.finish_work_item(conn, first.id, 111) is False
        assert store.finish_work_item(conn, first.id, 222) is True
        assert store.purge(conn, instance_id) == 1


# --- the local host, in a subprocess ------------------------------------------------------------


def start_durable_host(
    database: TestDatabase,
    data_dir: Path,
    env: dict[str, str] | None = None,
    workers: int | None = None,
) -> LocalHost:
    """`dtbase-local --app tests.durable_app:app` on the test database."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"host-{port}.log"
    environment = host_environment(database.url, {"T_TICK_SCHEDULE": NEVER, **(env or {})})
    command = [
        sys.executable,
        "-m",
        "local.cli",
        "--app",
        APP_SPEC,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--log-level",
        "warning",
    ]
    if workers:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
    )
    host = LocalHost(
        url=f"http://127.0.0.1:{port}",
        process=process,
        data_dir=data_dir,
        log_path=log_path,
        env=environment,
    )
    wait_ready(host)
    return host


def system_key(host: LocalHost) -> str:
    """The Durable system key the host generated into its data directory."""
    return str(json.loads((host.data_dir / "local-secrets.json").read_text())[SYSTEM_KEY])


def poll(url: str, timeout: float = 60) -> httpx.Response:
    """GET a status URL until it stops answering 202, as a client of Azure would."""
    deadline = time.monotonic() + timeout
    while True:
        reply = httpx.get(url, timeout=10)
        if reply.status_code != 202:
            return reply
        assert reply.headers["location"] == url
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.1)


@pytest.fixture(scope="class")
def host(migrated: TestDatabase, host_root: Path) -> Iterator[LocalHost]:
    """A durable host for TestLocalHost, with a timer ticking every second."""
    tick_file = host_root / "ticks.jsonl"
    host = start_durable_host(
        migrated,
        host_root / "durable-host",
        {
            "T_TICK_SCHEDULE": "* * * * * *",
            "T_TICK_FILE": str(tick_file),
            "T_KICKOFF_INSTANCE": "kicked-off-by-a-timer",
        },
    )
    host.tick_file = tick_file  # type: ignore[attr-defined]
    yield host
    host.stop()
    assert host.process.returncode == 0, host.log()


class TestLocalHost:
    def test_the_sdk_s_own_client_against_the_local_host(self, host: LocalHost) -> None:
        from azure.durable_functions.models.utils import http_utils

        async def scenario() -> dict[str, Any]:
            client = df.DurableOrchestrationClient(
                client_binding(host.url, system_key=system_key(host))
            )
            seen: dict[str, Any] = {}
            approval = await client.start_new("t_approval", None, {"for": "forecast"})
            while True:
                status = await client.get_status(approval)
                if status.custom_status == "waiting for approval":
                    break
                await asyncio.sleep(0.05)
            seen["running"] = status.runtime_status.value
            seen["input"] = status.input_
            await client.raise_event(approval, "approve", {"by": "sdk"})
            while (status := await client.get_status(approval)).runtime_status.value in (
                "Pending",
                "Running",
            ):
                await asyncio.sleep(0.05)
            seen["done"] = (status.runtime_status.value, status.output)
            history = await client.get_status(approval, show_history=True)
            # The SDK keeps the JSON's `historyEvents` as an attribute of that name.
            seen["history"] = [e["EventType"] for e in history.historyEvents]

            doomed = await client.start_new("t_approval", "doomed-instance")
            await client.terminate(doomed, "changed my mind")
            status = await client.get_status(doomed)
            seen["terminated"] = (status.runtime_status.value, status.output)
            await client.terminate(doomed, "again")  # 410: the SDK accepts it
            with pytest.raises(Exception, match="is gone"):
                await client.raise_event(doomed, "approve", 1)
            with pytest.raises(Exception, match="t_nope"):
                await client.start_new("t_nope")
            purged = await client.purge_instance_history(doomed)
            seen["purged"] = purged.instances_deleted
            seen["after_purge"] = (await client.get_status(doomed)).message
            listed = await client.get_status_all()
            seen["listed"] = approval in [s.instance_id for s in listed]
            return seen

        async def run_and_close() -> dict[str, Any]:
            try:
                return await scenario()
            finally:
                # The SDK's session belongs to this event loop (docs/architecture.md, Pitfalls
                # worked around).
                await http_utils._close_session()

        seen = asyncio.run(run_and_close())
        assert seen["running"] == "Running"
        assert seen["input"] == {"for": "forecast"}
        # As on Azure: the SDK's raise_event encodes its data twice, and the orchestrator
        # receives the JSON text (azure-functions-durable-python issue 295); a plain
        # HTTP client's JSON arrives as it was (test below).
        assert seen["done"] == ("Completed", {"approval": '{"by": "sdk"}'})
        assert seen["history"] == ["ExecutionStarted", "EventRaised", "ExecutionCompleted"]
        assert seen["terminated"] == ("Terminated", "changed my mind")
        assert seen["purged"] == 1
        assert seen["after_purge"] == "No instance with ID 'doomed-instance' found."
        assert seen["listed"] is True

    def test_a_client_polls_the_status_urls_as_on_azure(self, host: LocalHost) -> None:
        reply = httpx.post(host.api + "/start/t_fan_out", json={"n": 4, "delay": 0.3})
        assert reply.status_code == 202, reply.text
        urls = reply.json()
        assert reply.headers["location"] == urls["statusQueryGetUri"]
        assert urls["statusQueryGetUri"].startswith(f"{host.url}{WEBHOOK_PREFIX}instances/")
        assert urls["statusQueryGetUri"].endswith(f"&code={system_key(host)}")
        first = httpx.get(urls["statusQueryGetUri"])
        assert first.status_code == 202 and first.json()["runtimeStatus"] in ("Pending", "Running")
        done = poll(urls["statusQueryGetUri"])
        assert done.status_code == 200
        body = done.json()
        assert set(body) == {
            "name",
            "instanceId",
            "runtimeStatus",
            "input",
            "output",
            "customStatus",
            "createdTime",
            "lastUpdatedTime",
        }
        assert (body["name"], body["instanceId"], body["runtimeStatus"]) == (
            "t_fan_out",
            urls["id"],
            "Completed",
        )
        assert body["output"]["squares"] == [0, 1, 4, 9]
        assert body["createdTime"].endswith("Z") and body["lastUpdatedTime"].endswith("Z")
        history = httpx.get(urls["statusQueryGetUri"] + "&showHistory=true&showHistoryOutput=true")
        events = history.json()["historyEvents"]
        assert [e["EventType"] for e in events].count("TaskCompleted") == 5
        assert {"FunctionName", "Result", "ScheduledTime", "Timestamp"} <= set(events[1])

        # An orchestration waiting for an event: send it through sendEventPostUri.
        urls = httpx.post(host.api + "/start/t_approval").json()
        wait_for(lambda: httpx.get(urls["statusQueryGetUri"]).json()["customStatus"])
        send = urls["sendEventPostUri"].replace("{eventName}", "approve")
        assert httpx.post(send, json={"approved": True}).status_code == 202
        done = poll(urls["statusQueryGetUri"])
        assert (done.status_code, done.json()["output"]) == (200, {"approval": {"approved": True}})
        assert httpx.post(send, json=1).status_code == 410

        # Terminate, then purge.
        urls = httpx.post(host.api + "/start/t_approval").json()
        terminate = urls["terminatePostUri"].replace("{text}", "stop%20it")
        assert httpx.post(terminate).status_code == 202
        done = httpx.get(urls["statusQueryGetUri"])
        assert (done.status_code, done.json()["runtimeStatus"], done.json()["output"]) == (
            200,
            "Terminated",
            "stop it",
        )
        assert httpx.post(terminate).status_code == 410
        assert httpx.delete(urls["purgeHistoryDeleteUri"]).json() == {"instancesDeleted": 1}
        assert httpx.get(urls["statusQueryGetUri"]).status_code == 404
        assert httpx.delete(urls["purgeHistoryDeleteUri"]).status_code == 404

    def test_a_failed_instance_through_http(self, host: LocalHost) -> None:
        reply = httpx.post(host.api + "/start/t_failing", json="over http")
        done = poll(reply.json()["statusQueryGetUri"])
        assert done.status_code == 200  # as Azure answers, unless asked for a 500
        assert done.json()["runtimeStatus"] == "Failed"
        assert "ValueError: boom: over http" in done.json()["output"]
        strict = httpx.get(
            reply.json()["statusQueryGetUri"] + "&returnInternalServerErrorOnFailure=true"
        )
        assert strict.status_code == 500

    def test_management_api_errors(self, host: LocalHost) -> None:
        base = host.url + WEBHOOK_PREFIX
        key = {"code": system_key(host)}
        reply = httpx.post(base + "orchestrators/t_nope", json=1, params=key)
        assert reply.status_code == 400 and "t_nope" in reply.json()["ExceptionMessage"]
        assert httpx.get(base + "instances/nobody", params=key).status_code == 404
        raised = httpx.post(base + "instances/nobody/raiseEvent/x", json=1, params=key)
        assert raised.status_code == 404
        assert httpx.post(base + "instances/nobody/terminate", params=key).status_code == 404
        assert httpx.post(base + "instances/nobody/rewind", params=key).status_code == 501
        assert httpx.get(base + "elsewhere", params=key).status_code == 404
        bad = httpx.post(
            base + "instances/nobody/raiseEvent/x",
            params=key,
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 400

    def test_the_management_api_needs_the_system_key(self, host: LocalHost) -> None:
        key = system_key(host)
        urls = httpx.post(host.api + "/start/t_approval").json()
        status_url = urls["statusQueryGetUri"]
        assert httpx.get(status_url).status_code == 202  # as the starter returned it
        bare = status_url.partition("?")[0]
        assert httpx.get(bare).status_code == 401
        assert httpx.get(bare, params={"code": "wrong"}).status_code == 401
        assert httpx.get(bare, params={"code": key[:-1]}).status_code == 401
        assert httpx.get(bare, headers={"x-functions-key": "wrong"}).status_code == 401
        assert httpx.get(bare, headers={"x-functions-key": key}).status_code == 202
        assert httpx.get(bare, auth=("durabletask", "wrong")).status_code == 401
        assert httpx.get(bare, auth=("durabletask", key)).status_code == 202
        # Nothing is started, listed, changed or purged without it.
        base = host.url + WEBHOOK_PREFIX
        for method, path in (
            ("POST", "orchestrators/t_approval"),
            ("GET", "instances"),
            ("POST", f"instances/{urls['id']}/raiseEvent/approve"),
            ("POST", f"instances/{urls['id']}/terminate"),
            ("DELETE", f"instances/{urls['id']}"),
        ):
            for params in ({}, {"code": "wrong"}):
                refused = httpx.request(method, base + path, params=params, json=1)
                assert refused.status_code == 401, (method, path, refused.text)
        assert httpx.get(status_url).json()["runtimeStatus"] == "Running"
        # Odd instance ids, with the key: an answer, never a 500.
        for odd in ("%00", "%23x", "%3F", "x" * 300):
            reply = httpx.get(base + f"instances/{odd}", params={"code": key})
            assert reply.status_code in (400, 404), (odd, reply.status_code, reply.text)
        terminate = urls["terminatePostUri"].replace("{text}", "done")
        assert httpx.post(terminate).status_code == 202

    def test_timer_functions_fire_in_the_host(self, host: LocalHost) -> None:
        # run_on_startup, with a durable client binding: it started an orchestration.
        url = f"{host.url}{WEBHOOK_PREFIX}instances/kicked-off-by-a-timer?code={system_key(host)}"
        started = poll(url, timeout=30)
        assert started.status_code == 200, started.text
        assert started.json()["output"]["squares"] == [0, 1]
        # Every second, on the second.
        tick_file: Path = host.tick_file  # type: ignore[attr-defined]
        wait_for(lambda: tick_file.exists() and len(tick_file.read_text().splitlines()) >= 3)
        ticks = [json.loads(line) for line in tick_file.read_text().splitlines()]
        moments = [datetime.fromisoformat(t["at"]) for t in ticks]
        assert all(m.microsecond < 500_000 for m in moments), moments
        assert all(
            timedelta(seconds=0.5) < b - a < timedelta(seconds=1.5)
            for a, b in itertools.pairwise(moments)
        ), moments


def test_a_host_killed_during_a_fan_out_finishes_after_restart(
    migrated: TestDatabase, host_root: Path
) -> None:
    data_dir = host_root / "killed-host"
    first = start_durable_host(migrated, data_dir, workers=2)
    rpc, code = f"{first.url}{WEBHOOK_PREFIX}", f"code={system_key(first)}"
    # Eight activities of 1.5 s each on two workers: four rounds, about 6 s.
    reply = httpx.post(rpc + f"orchestrators/t_fan_out?{code}", json={"n": 8, "delay": 1.5})
    assert reply.status_code == 202
    instance_id = reply.json()["id"]

    def completed_tasks() -> int:
        status = httpx.get(rpc + f"instances/{instance_id}?showHistory=true&{code}").json()
        return event_types(status).count("TaskCompleted")

    wait_for(lambda: completed_tasks() >= 2, timeout=30, interval=0.1)
    workers = children(first.process.pid)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    done_before = completed_tasks_in_db(migrated, instance_id)
    assert 2 <= done_before < 8
    with migrated.engine.connect() as conn:
        row = durable_store.get_instance(conn, instance_id)
    assert row.status == "Running"
    # Its activity workers died with it.
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)

    second = start_durable_host(migrated, data_dir, workers=2)
    try:
        url = f"{second.url}{WEBHOOK_PREFIX}instances/{instance_id}?{code}"
        done = poll(url, timeout=60)
        assert done.status_code == 200, done.text
        status = done.json()
        assert status["runtimeStatus"] == "Completed"
        assert status["output"]["squares"] == [x * x for x in range(8)]
        assert status["output"]["doubled_sum"] == 2 * sum(x * x for x in range(8))
        assert nothing_left(migrated, instance_id) == (0, 0)
        assert "durable: resuming" in second.log()
    finally:
        second.stop()


def completed_tasks_in_db(database: TestDatabase, instance_id: str) -> int:
    with database.engine.connect() as conn:
        events = durable_store.get_history(conn, instance_id)
    return sum(1 for e in events if e["EventType"] == 5)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (reaped by nobody until init adopts it).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_ctrl_c_during_a_fan_out_stops_at_once_and_a_restart_finishes(
    migrated: TestDatabase, host_root: Path
) -> None:
    data_dir = host_root / "interrupted-host"
    first = start_durable_host(migrated, data_dir, workers=2)
    rpc, code = f"{first.url}{WEBHOOK_PREFIX}", f"code={system_key(first)}"
    reply = httpx.post(rpc + f"orchestrators/t_fan_out?{code}", json={"n": 2, "delay": 8})
    instance_id = reply.json()["id"]
    wait_for(lambda: httpx.get(rpc + f"instances/{instance_id}?{code}").json()["customStatus"])
    time.sleep(0.5)  # both activities are running now
    workers = children(first.process.pid)
    assert len(workers) >= 2
    stopping = time.monotonic()
    first.process.send_signal(signal.SIGINT)
    assert first.process.wait(30) == 0, first.log()
    # Not held up by the 8 s activities: they are left to the next host.
    assert time.monotonic() - stopping < 6
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)
    assert completed_tasks_in_db(migrated, instance_id) == 0

    second = start_durable_host(migrated, data_dir, workers=2)
    try:
        done = poll(f"{second.url}{WEBHOOK_PREFIX}instances/{instance_id}?{code}", timeout=60)
        assert done.json()["runtimeStatus"] == "Completed", done.text
        assert done.json()["output"]["squares"] == [0, 1]
    finally:
        second.stop()


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in found.stdout.split()]
