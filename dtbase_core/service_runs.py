"""A service run as a Durable Functions orchestration; the function app registers it as
`service_run_orchestrator` (function_app/services.py), so that a run outlives the
request that started it (an HTTP request is cut at 230 s on Azure, and a task in the
background would die with its instance).

The input (`RunJob`) is the run's id, its target and its bound (DT_SERVICE_RUN_MAX_SECONDS
of the host that started it, so that whichever host replays it keeps the same bound). The
steps:

1. the call activity calls the service, bounded by the run's limit;
2. while the reply is a 202 with a `Location`, as Durable's own `call_http` does: a
   durable timer for its `Retry-After` (clamped to POLL_SECONDS), then the poll activity
   GETs the Location, bounded by what is left; past the limit, the run times out (504);
3. the record activity writes the outcome into the run-log row (with retries: the
   database may be away for a moment), and the orchestration returns the outcome.

An activity that raises (a host that could not finish it) is a failed call (502), or a
timeout past the limit. Deterministic, as an orchestrator must be: time is the context's
`current_utc_datetime`, and nothing here does I/O. Written against the context's methods
only (no SDK import), with the activities' names as parameters.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dtbase_core.services import RunResult, RunTarget, call_failed, timed_out

# Polling a 202's Location: its Retry-After within these bounds, or the default.
POLL_SECONDS = (1.0, 60.0)
DEFAULT_POLL_SECONDS = 5.0


def instance_id(run_id: int) -> str:
    """The orchestration of run `run_id`, findable from the run alone."""
    return f"service-run-{run_id}"


@dataclass(frozen=True)
class RunJob:
    run_id: int
    target: RunTarget
    max_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "target": self.target.to_json(),
            "max_seconds": self.max_seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunJob:
        return cls(data["run_id"], RunTarget.from_json(data["target"]), data["max_seconds"])


def poll_delay(retry_after: float | None) -> float:
    if retry_after is None:
        return DEFAULT_POLL_SECONDS
    low, high = POLL_SECONDS
    return min(max(retry_after, low), high)


def _call(
    context: Any, activity: str, payload: dict[str, Any], deadline: datetime, limit: float
) -> Generator[Any, Any, RunResult]:
    try:
        result = yield context.call_activity(activity, payload)
    except Exception as exc:
        if context.current_utc_datetime >= deadline:
            return timed_out(limit)
        lines = str(exc).strip().splitlines()
        return call_failed(lines[0] if lines else type(exc).__name__)
    return RunResult.from_json(result)


def orchestrate(
    context: Any, call: str, poll: str, record: str, record_retry: Any
) -> Generator[Any, Any, dict[str, Any]]:
    """The run's steps; `record_retry` is the SDK's RetryOptions for the record activity."""
    job = RunJob.from_json(context.get_input())
    limit = job.max_seconds
    deadline = context.current_utc_datetime + timedelta(seconds=limit)
    target = job.target.to_json()
    result = yield from _call(
        context, call, {"target": target, "timeout": limit, "limit": limit}, deadline, limit
    )
    while result.location is not None:
        now = context.current_utc_datetime
        yield context.create_timer(
            min(now + timedelta(seconds=poll_delay(result.retry_after)), deadline)
        )
        left = (deadline - context.current_utc_datetime).total_seconds()
        if left <= 0:
            result = timed_out(limit)
            break
        payload = {"target": target, "location": result.location, "timeout": left, "limit": limit}
        result = yield from _call(context, poll, payload, deadline, limit)
    outcome = result.final().to_json()
    yield context.call_activity_with_retry(
        record, record_retry, {"run_id": job.run_id, "result": outcome}
    )
    return outcome
