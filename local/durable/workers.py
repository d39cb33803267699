"""Where activities run: synchronous ones in a pool of spawned processes, warm before the
first activity, each of which imports the function app itself; coroutine activities
(`async def`) on one long-lived event loop in the host, many at once, as the Python worker
runs them concurrently on its own loop (an activity waiting on the network holds no
process).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import inspect
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

# (True, result JSON, None) or (False, reason, details), as an activity ends.
Outcome = tuple[bool, str | None, str | None]

_worker_activities: dict[str, Any] = {}


def load_app(spec: str) -> Any:
    """`module:attribute` → the function app object."""
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute or "app")


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


def _decode(input_json: str | None) -> Any:
    from azure.functions import meta
    from azure.functions.durable_functions import ActivityTriggerConverter

    return ActivityTriggerConverter.decode(
        meta.Datum(type="json", value=input_json), trigger_metadata=None
    )


def _encode(result: Any) -> str | None:
    from azure.functions.durable_functions import ActivityTriggerConverter

    return ActivityTriggerConverter.encode(result, expected_type=None).value


def _failed(name: str, exc: BaseException) -> Outcome:
    reason = f"Activity function '{name}' failed: {type(exc).__name__}: {exc}"
    # The user's frames only (not the runner's), as the Functions host reports them.
    frames = exc.__traceback__.tb_next if exc.__traceback__ else None
    details = "".join(traceback.format_exception(exc.with_traceback(frames)))
    return False, reason, details


def run_activity(name: str, input_json: str | None) -> Outcome:
    """Run one activity in this process the way the Python worker does."""
    fn = _worker_activities.get(name)
    if fn is None:
        return False, f"Activity function '{name}' does not exist", ""
    try:
        result = fn.get_user_function()(**{fn.get_trigger().name: _decode(input_json)})
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return True, _encode(result), None
    except Exception as exc:
        return _failed(name, exc)


def is_coroutine_activity(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn.get_user_function())


class AsyncActivities:
    """Coroutine activities on one event loop in a thread of the host (the runtime bounds
    how many run at once). `submit` answers a concurrent Future, as the pool's does."""

    def __init__(self, functions: dict[str, Any]) -> None:
        self.functions = functions
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(loop,), name="durable-async-activities", daemon=True
        )
        self._loop = loop
        self._thread.start()

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            # Stopped: what still runs is cancelled, and given a moment to close its
            # connections, before the loop goes.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=5))
        finally:
            loop.close()

    def submit(self, name: str, input_json: str | None) -> Future[Outcome]:
        assert self._loop is not None, "the loop is not started"
        return asyncio.run_coroutine_threadsafe(self._run(name, input_json), self._loop)

    async def _run(self, name: str, input_json: str | None) -> Outcome:
        fn = self.functions[name]
        try:
            result = await fn.get_user_function()(**{fn.get_trigger().name: _decode(input_json)})
            return True, _encode(result), None
        except Exception as exc:
            return _failed(name, exc)

    def shutdown(self) -> None:
        """Stop at once: running activities are cancelled (another host runs them again)."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None


class WorkerPool:
    """`size` spawned processes running the activities of the app at `app_spec`."""

    def __init__(self, app_spec: str, size: int) -> None:
        self.app_spec = app_spec
        self.size = size
        self._executor: ProcessPoolExecutor | None = None

    def start(self, timeout: float = 120) -> None:
        self._executor = ProcessPoolExecutor(
            max_workers=self.size,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.app_spec,),
        )
        # Submitted together, so the pool spawns every worker now, not one by one on
        # demand; and again until every worker has answered, so each has imported the app
        # (its initializer ran): a fan-out then starts on all cores at once.
        deadline = time.monotonic() + timeout
        ready: set[int] = set()
        while len(ready) < self.size:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(ready)} of {self.size} workers started")
            batch = [self._executor.submit(_worker_ready) for _ in range(self.size)]
            ready.update(future.result(timeout=timeout) for future in batch)
        log.info("durable worker pool ready: %d processes", len(ready))

    def submit(self, name: str, input_json: str | None) -> Future[Outcome]:
        assert self._executor is not None, "the pool is not started"
        return self._executor.submit(run_activity, name, input_json)

    @property
    def generation(self) -> object:
        """Changes when the pool is restarted: a broken pool is restarted once."""
        return self._executor

    def restart(self) -> None:
        log.warning("durable worker pool broke; starting a new one")
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.start()

    def shutdown(self) -> None:
        """Stop at once: a long activity is not waited for (another host runs it again)."""
        if self._executor is None:
            return
        processes = list((getattr(self._executor, "_processes", None) or {}).values())
        self._executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.terminate()
        self._executor = None
