"""What the runtime keeps about an instance between episodes (`durable_instance.state`).

The SDK replays the orchestrator from its history, but some of what it does is not in the
history: the task ids it hands out (one per atomic action, plus the hidden ids of
`call_*_with_retry`), how many actions it had asked for, and which of them are timers that
may still be cancelled. The runtime mirrors that here, so that the ids it writes into the
history are the ones the SDK expects, and so that a replay can be checked against it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# `task_ids` entry of an action recorded before the runtime kept them (not checked).
UNRECORDED = -1


@dataclass
class Retry:
    """A `call_*_with_retry` in progress: the attempt running and how to run another."""

    attempt: int
    options: dict[str, Any]
    action: dict[str, Any]


@dataclass
class InstanceState:
    next_id: int = 0  # the SDK's task-id counter
    seen: int = 0  # atomic actions already scheduled
    # Per action scheduled, in order: its task id, or None for one that takes none (a wait
    # for an external event, continue_as_new); what replays are checked against.
    task_ids: list[int | None] = field(default_factory=list)
    retries: dict[str, Retry] = field(default_factory=dict)  # by the first attempt's id
    retry_tasks: dict[str, str] = field(default_factory=dict)  # attempt task id -> retry
    retry_timers: dict[str, str] = field(default_factory=dict)  # retry timer id -> retry
    timers: dict[str, int] = field(default_factory=dict)  # action index -> timer id
    parent_execution: str | None = None  # a child's parent's execution, for its result

    @property
    def retrying(self) -> bool:
        return bool(self.retry_tasks or self.retry_timers)

    def new_id(self) -> int:
        task_id = self.next_id
        self.next_id += 1
        return task_id

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> InstanceState:
        data = dict(data or {})
        retries = {k: Retry(**v) for k, v in (data.pop("retries", None) or {}).items()}
        state = cls(retries=retries, **{k: v for k, v in data.items() if k in _FIELDS})
        if "task_ids" not in data:  # kept by an older runtime
            state.task_ids = [UNRECORDED] * state.seen
        return state

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = {
    "next_id",
    "seen",
    "task_ids",
    "retry_tasks",
    "retry_timers",
    "timers",
    "parent_execution",
}
