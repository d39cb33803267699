"""One episode of an orchestration instance, without the database: hand the history and
the new events to the orchestrator function (the SDK's own replay), check that the
actions it replays are the ones its history recorded, and work out what it now asks for
(history to append, activities to queue, timers, child instances, its new status).

The runtime (runtime.py) reads what this needs and writes what it returns, in one
transaction.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from local.durable.protocol import (
    ACTIVITY_ACTIONS,
    CALL_ACTIVITY_RETRY,
    CALL_SUB_RETRY,
    CONTINUE_AS_NEW,
    CREATE_TIMER,
    EXECUTION_COMPLETED,
    EXECUTION_STARTED,
    ORCHESTRATOR_COMPLETED,
    ORCHESTRATOR_STARTED,
    SCHEDULING_EVENTS,
    SUB_ACTIONS,
    SUB_COMPLETED,
    SUB_CREATED,
    SUB_FAILED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_SCHEDULED,
    TIMER_CREATED,
    TIMER_FIRED,
    UNSUPPORTED_ACTIONS,
    WAIT_EVENT,
    event,
    flatten,
    parse_time,
    timestamp,
    valid_instance_id,
)
from local.durable.state import UNRECORDED, InstanceState, Retry

Message = tuple[str, dict[str, Any], datetime]  # (instance id, event, visible at)

NONDETERMINISTIC = "Non-Deterministic workflow detected: "
CODE_CHANGED = (
    "Was a change made to the orchestrator code after this instance had already started running?"
)


@dataclass
class Episode:
    """What an episode produced, for the runtime to store."""

    state: InstanceState
    consumed: list[int] = field(default_factory=list)  # message ids handed to the SDK
    history: list[dict[str, Any]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    work: list[dict[str, Any]] = field(default_factory=list)
    children: list[dict[str, Any]] = field(default_factory=list)
    cancelled_timers: list[int] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # the instance's columns
    continued: dict[str, Any] | None = None  # a continue_as_new action
    finished: bool = False
    replay_seconds: float = 0.0


def parent_notice(
    row: Any, status: str, output: str | None, error: str | None, now: datetime
) -> list[Message]:
    """The event a child's end sends its parent (none for a top-level instance)."""
    if not row.parent_instance_id:
        return []
    if status == "Completed":
        done = event(SUB_COMPLETED, now, TaskScheduledId=row.parent_task_id, Result=output)
    else:
        reason = f"Sub-orchestration '{row.name}' ({row.instance_id}) {status.lower()}"
        done = event(
            SUB_FAILED,
            now,
            TaskScheduledId=row.parent_task_id,
            Reason=f"{reason}: {error}" if error else reason,
            Details="",
        )
    return [(row.parent_instance_id, done, now)]


def failure_output(name: str, error: str) -> str:
    return json.dumps(f"Orchestrator function '{name}' failed: {error}")


class Replayer:
    """Runs episodes of the orchestrators of one app."""

    def __init__(self, orchestrators: dict[str, Any], activities: set[str]) -> None:
        self.orchestrators = orchestrators
        self.activities = activities

    def episode(
        self,
        row: Any,
        messages: list[Any],
        past: list[dict[str, Any]],
        now: datetime,
    ) -> Episode | None:
        """Replay one episode of `row` with its due `messages`; None if there is nothing
        to hand it yet (its ExecutionStarted is not due)."""
        state = InstanceState.from_json(row.state)
        ordered = sorted(messages, key=lambda m: m.event["EventType"] != EXECUTION_STARTED)
        if state.retrying:
            # Hidden retry ids are allocated as the SDK processes each event: one at a time
            # keeps them in the SDK's order (the package docstring says more).
            ordered = ordered[:1]
        if not past and (not ordered or ordered[0].event["EventType"] != EXECUTION_STARTED):
            return None
        out = Episode(state=state, consumed=[m.id for m in ordered])
        new_events = [event(ORCHESTRATOR_STARTED, now)] + [
            dict(m.event, IsPlayed=False) for m in ordered
        ]
        for new in new_events[1:]:
            self._hidden_ids(row, state, new, now, out)

        result, error, out.replay_seconds = self._run(row, [*past, *new_events])
        actions = flatten(result.get("actions") or [])
        if error is None:
            error = self._nondeterminism(actions, state, past)
            if error is not None:
                actions = []  # nothing new is scheduled by a replay that went astray
        for index in range(state.seen, len(actions)):
            action = actions[index]
            kind = action.get("actionType")
            task_id: int | None = None
            if kind == CONTINUE_AS_NEW:
                out.continued = action
            elif kind in UNSUPPORTED_ACTIONS:
                if error is None:
                    error = f"{UNSUPPORTED_ACTIONS[kind]} is not supported by the local host"
            elif kind != WAIT_EVENT:
                task_id = self._schedule(row, state, index, action, now, out)
            state.task_ids.append(task_id)
        state.seen = max(state.seen, len(actions))
        self._cancel_timers(state, actions, out)

        out.history = [dict(e, IsPlayed=True) for e in new_events] + out.history
        out.values = {"last_updated_time": now, "status": "Running"}
        if "customStatus" in result:
            out.values["custom_status"] = json.dumps(result["customStatus"])
        status: str | None = None
        if error is not None:
            status, output = "Failed", failure_output(row.name, error)
        elif result.get("isDone") and out.continued is not None:
            return out
        elif result.get("isDone"):
            status, output = "Completed", json.dumps(result.get("output"))
        out.history.append(event(ORCHESTRATOR_COMPLETED, now))
        if status is not None:
            out.history.append(
                event(EXECUTION_COMPLETED, now, OrchestrationStatus=status, Result=output)
            )
            out.values.update(status=status, output=output)
            out.finished = True
            out.work.clear()
            out.children.clear()
            out.messages = [m for m in out.messages if m[0] != row.instance_id]
            out.messages.extend(parent_notice(row, status, output, error, now))
        out.values["state"] = state.to_json()
        return out

    def _run(
        self, row: Any, history: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], str | None, float]:
        """The SDK's replay: (its state JSON, the orchestrator's error, seconds taken)."""
        context = {
            "history": history,
            "instanceId": row.instance_id,
            "isReplaying": False,
            "parentInstanceId": row.parent_instance_id,
            "input": row.input,
            "upperSchemaVersion": 1,  # ReplaySchema.V2: one flat action list
        }
        handle = self.orchestrators[row.name].get_user_function()
        started = time.perf_counter()
        error: str | None = None
        try:
            result = json.loads(handle(json.dumps(context)))
        except Exception as exc:
            # The SDK raises with its state appended after this marker.
            message, marker, data = str(exc).partition("\n\n$OutOfProcData$:")
            result = json.loads(data) if marker else {"isDone": False, "actions": []}
            error = result.get("error") or message or type(exc).__name__
        return result, error, time.perf_counter() - started

    def _nondeterminism(
        self, actions: list[dict[str, Any]], state: InstanceState, past: list[dict[str, Any]]
    ) -> str | None:
        """DTFx's check: the actions replayed must be the ones the history recorded, in
        order; the first difference, in the Durable Task Framework's words, or None.
        Waits for external events are checked too, which DTFx does not do (they take no
        task id): this runtime finds an episode's new actions by their position."""
        scheduled = {e["EventId"]: e for e in past if e["EventType"] in SCHEDULING_EVENTS}
        for index, task_id in enumerate(state.task_ids):
            if task_id == UNRECORDED:
                continue
            replayed = actions[index] if index < len(actions) else None
            now_doing = _describe_action(replayed) if replayed is not None else None
            if task_id is None:
                if replayed is not None and replayed.get("actionType") in (
                    WAIT_EVENT,
                    CONTINUE_AS_NEW,
                ):
                    continue
                before = "waited for an external event"
                if replayed is None:
                    return (
                        f"{NONDETERMINISTIC}A previous execution of this orchestration {before} "
                        f"at action {index}, but the current replay execution hasn't (yet?) "
                        f"done so. {CODE_CHANGED}"
                    )
                return (
                    f"{NONDETERMINISTIC}A previous execution of this orchestration {before} "
                    f"at action {index}, but the current replay execution instead "
                    f"{now_doing}. {CODE_CHANGED}"
                )
            recorded = scheduled.get(task_id)
            if recorded is None:  # a history reset by continue_as_new, say
                continue
            what, name = _describe_event(recorded)
            before = f"scheduled {what} with sequence ID {task_id}" + (
                f" and name '{name}' (version '')" if name is not None else ""
            )
            if replayed is None:
                return (
                    f"{NONDETERMINISTIC}A previous execution of this orchestration {before}, "
                    f"but the current replay execution hasn't (yet?) scheduled this task. "
                    f"{CODE_CHANGED}"
                )
            if (what, name) != _action_identity(replayed):
                return (
                    f"{NONDETERMINISTIC}A previous execution of this orchestration {before}, "
                    f"but the current replay execution instead {now_doing}. {CODE_CHANGED}"
                )
        return None

    def _hidden_ids(
        self, row: Any, state: InstanceState, new: dict[str, Any], now: datetime, out: Episode
    ) -> None:
        """Mirror the ids `call_*_with_retry` takes as the SDK processes this event."""
        kind = new["EventType"]
        if kind in (TASK_COMPLETED, SUB_COMPLETED, TASK_FAILED, SUB_FAILED):
            key = state.retry_tasks.pop(str(new.get("TaskScheduledId")), None)
            if key is None or kind in (TASK_COMPLETED, SUB_COMPLETED):
                return
            retry = state.retries[key]
            timer_id = state.new_id()
            last = retry.attempt >= int(retry.options.get("maxNumberOfAttempts", 1))
            delay = 0 if last else int(retry.options.get("firstRetryIntervalInMilliseconds", 0))
            fire_at = now + timedelta(milliseconds=delay)
            out.history.append(
                event(TIMER_CREATED, now, EventId=timer_id, FireAt=timestamp(fire_at))
            )
            fired = event(TIMER_FIRED, fire_at, TimerId=timer_id, FireAt=timestamp(fire_at))
            out.messages.append((row.instance_id, fired, fire_at))
            state.retry_timers[str(timer_id)] = key
        elif kind == TIMER_FIRED:
            timer = str(new.get("TimerId"))
            state.timers = {k: v for k, v in state.timers.items() if str(v) != timer}
            key = state.retry_timers.pop(timer, None)
            if key is None:
                return
            retry = state.retries[key]
            if retry.attempt >= int(retry.options.get("maxNumberOfAttempts", 1)):
                state.retries.pop(key, None)  # the SDK now fails the task
                return
            retry.attempt += 1
            task_id = state.new_id()
            state.retry_tasks[str(task_id)] = key
            self._start_task(row, retry.action, task_id, now, out)

    def _schedule(
        self,
        row: Any,
        state: InstanceState,
        index: int,
        action: dict[str, Any],
        now: datetime,
        out: Episode,
    ) -> int:
        kind = action["actionType"]
        task_id = state.new_id()
        if kind == CREATE_TIMER:
            fire_at = parse_time(action["fireAt"])
            stamp = timestamp(fire_at)
            out.history.append(event(TIMER_CREATED, now, EventId=task_id, FireAt=stamp))
            fired = event(TIMER_FIRED, fire_at, TimerId=task_id, FireAt=stamp)
            out.messages.append((row.instance_id, fired, fire_at))
            state.timers[str(index)] = task_id
            return task_id
        if kind in (CALL_ACTIVITY_RETRY, CALL_SUB_RETRY):
            key = str(task_id)
            state.retries[key] = Retry(
                attempt=1, options=action.get("retryOptions") or {}, action=action
            )
            state.retry_tasks[key] = key
        self._start_task(row, action, task_id, now, out)
        return task_id

    def _start_task(
        self, row: Any, action: dict[str, Any], task_id: int, now: datetime, out: Episode
    ) -> None:
        name = action.get("functionName")
        input_json = action.get("input")
        if action["actionType"] in ACTIVITY_ACTIONS:
            out.history.append(
                event(TASK_SCHEDULED, now, EventId=task_id, Name=name, Input=input_json)
            )
            if name not in self.activities:
                # As the Functions host does: the orchestrator sees a failed task.
                failed = event(
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
            event(
                SUB_CREATED, now, EventId=task_id, Name=name, InstanceId=child_id, Input=input_json
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
            failed = event(SUB_FAILED, now, TaskScheduledId=task_id, Reason=reason, Details="")
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
                "state": InstanceState(parent_execution=row.execution_id).to_json(),
            }
        )

    def _cancel_timers(
        self, state: InstanceState, actions: list[dict[str, Any]], out: Episode
    ) -> None:
        """A timer the orchestrator cancelled (the task_any timeout pattern) never fires."""
        for index, timer_id in list(state.timers.items()):
            if int(index) < len(actions) and actions[int(index)].get("isCanceled"):
                out.cancelled_timers.append(timer_id)
                del state.timers[index]


def _describe_event(recorded: dict[str, Any]) -> tuple[str, str | None]:
    kind = recorded["EventType"]
    if kind == TASK_SCHEDULED:
        return "an activity task", recorded.get("Name")
    if kind == SUB_CREATED:
        return "a sub-orchestration", recorded.get("Name")
    return "a timer", None


def _action_identity(action: dict[str, Any]) -> tuple[str, str | None]:
    kind = action.get("actionType")
    if kind in ACTIVITY_ACTIONS:
        return "an activity task", action.get("functionName")
    if kind in SUB_ACTIONS:
        return "a sub-orchestration", action.get("functionName")
    if kind == CREATE_TIMER:
        return "a timer", None
    return f"action type {kind}", None


def _describe_action(action: dict[str, Any]) -> str:
    kind = action.get("actionType")
    if kind == WAIT_EVENT:
        return f"waited for the external event '{action.get('externalEventName')}'"
    if kind == CONTINUE_AS_NEW:
        return "continued as new"
    what, name = _action_identity(action)
    return f"scheduled {what}" + (f" named '{name}'" if name is not None else "")
