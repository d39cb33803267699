"""The out-of-process Durable protocol the SDK speaks: history event and action types,
the JSON shape of an event, and Azure's rules for instance ids.

The numbers are DTFx's (`azure.durable_functions.models.history.HistoryEventType` and
`...models.actions.ActionType`); the package's docstring describes the exchange.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# History event types.
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
    EXECUTION_STARTED: "ExecutionStarted",
    EXECUTION_COMPLETED: "ExecutionCompleted",
    EXECUTION_TERMINATED: "ExecutionTerminated",
    TASK_SCHEDULED: "TaskScheduled",
    TASK_COMPLETED: "TaskCompleted",
    TASK_FAILED: "TaskFailed",
    SUB_CREATED: "SubOrchestrationInstanceCreated",
    SUB_COMPLETED: "SubOrchestrationInstanceCompleted",
    SUB_FAILED: "SubOrchestrationInstanceFailed",
    TIMER_CREATED: "TimerCreated",
    TIMER_FIRED: "TimerFired",
    ORCHESTRATOR_STARTED: "OrchestratorStarted",
    ORCHESTRATOR_COMPLETED: "OrchestratorCompleted",
    EVENT_RAISED: "EventRaised",
}

# The events that record an action taking a task id (EventId = the task id).
SCHEDULING_EVENTS = (TASK_SCHEDULED, SUB_CREATED, TIMER_CREATED)

# Action types.
CALL_ACTIVITY, CALL_ACTIVITY_RETRY, CALL_SUB, CALL_SUB_RETRY = 0, 1, 2, 3
CONTINUE_AS_NEW, CREATE_TIMER, WAIT_EVENT = 4, 5, 6
WHEN_ANY, WHEN_ALL = 11, 12
UNSUPPORTED_ACTIONS = {7: "call_entity", 8: "call_http", 9: "signal_entity"}
ACTIVITY_ACTIONS = (CALL_ACTIVITY, CALL_ACTIVITY_RETRY)
SUB_ACTIONS = (CALL_SUB, CALL_SUB_RETRY)

# Instance statuses.
RUNNING = ("Pending", "Running")
TERMINAL = ("Completed", "Failed", "Terminated")

MAX_INSTANCE_ID_LENGTH = 100


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """The DTFx history timestamp format."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def event(kind: int, moment: datetime, **fields: Any) -> dict[str, Any]:
    """A history event as the SDK reads it (`Version` is required on ExecutionStarted)."""
    return {
        "EventType": kind,
        "EventId": -1,
        "IsPlayed": False,
        "Timestamp": timestamp(moment),
        **fields,
    }


def execution_started(name: str, input_json: str | None, now: datetime) -> dict[str, Any]:
    return event(EXECUTION_STARTED, now, Name=name, Input=input_json, Version="")


def flatten(actions: list[Any]) -> list[dict[str, Any]]:
    """The SDK's (schema V2) action list as atomic actions in order: the order task ids
    are handed out in."""
    flat: list[dict[str, Any]] = []
    for action in actions:
        if isinstance(action, list):
            flat.extend(flatten(action))
        elif action.get("actionType") in (WHEN_ANY, WHEN_ALL):
            flat.extend(flatten(action.get("compoundActions") or []))
        else:
            flat.append(action)
    return flat


def valid_instance_id(instance_id: str) -> bool:
    """Azure's rule: at most 100 characters, none of / \\ # ? or control characters."""
    return (
        0 < len(instance_id) <= MAX_INSTANCE_ID_LENGTH
        and not any(c in instance_id for c in "/\\#?")
        and not any(ord(c) < 32 for c in instance_id)
    )
