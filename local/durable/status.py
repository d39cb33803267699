"""Instances and their history as Durable's HTTP API reports them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from local.durable.protocol import (
    EVENT_NAMES,
    EVENT_RAISED,
    EXECUTION_COMPLETED,
    EXECUTION_STARTED,
    EXECUTION_TERMINATED,
    ORCHESTRATOR_COMPLETED,
    ORCHESTRATOR_STARTED,
    SCHEDULING_EVENTS,
    SUB_COMPLETED,
    SUB_FAILED,
    TASK_COMPLETED,
    TASK_FAILED,
    TIMER_FIRED,
)


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
        if kind in SCHEDULING_EVENTS:
            scheduled[event["EventId"]] = event
            continue
        if kind in (ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED):
            continue
        item: dict[str, Any] = {"EventType": EVENT_NAMES.get(kind, str(kind))}
        if kind == EXECUTION_STARTED:
            item["FunctionName"] = event.get("Name")
        elif kind in (TASK_COMPLETED, TASK_FAILED, SUB_COMPLETED, SUB_FAILED):
            origin = scheduled.get(int(event.get("TaskScheduledId", -1)), {})
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
