"""Durable Functions on the local host: orchestrations replayed by the SDK itself,
instances kept in PostgreSQL, activities in a pool of worker processes, and the HTTP
management API that the SDK's client and the starters' status URLs use.

How an orchestration runs. Each *episode* is one transaction: lock an instance that has
messages due (SKIP LOCKED, so two hosts never run the same episode), read its history,
hand the history plus the new events to the orchestrator function's `handle`
(`Orchestrator.create(...).handle`: the SDK's own replay), check that the actions it
replays are those its history recorded (a mismatch fails the instance, as the Durable Task
Framework does), and store what it asks for: the events it produced, activity work items,
timer messages due at their fire time, child instances, and the instance's new status. A
crash anywhere in an episode rolls it back; the messages are still there for the next.

The exchange with the SDK: the context JSON holds the history (DTFx's event JSON; the
SDK treats what follows the last OrchestratorStarted as new), the instance id and its
input; the SDK answers with every action from the start (`actions`, schema V2), and
`isDone`/`output`, or raises with its state after a `$OutOfProcData$:` marker.

Task ids mirror the SDK's counter: one per atomic action in order (an external-event
wait takes none), plus the hidden ids of `call_*_with_retry` (a retry timer after each
failure, a re-scheduled task when that timer fires). While an instance has a retry in
progress, an episode takes one event at a time, so that those hidden ids are allocated
in the SDK's order; otherwise it takes every event due, as the Functions host does.

Activities run in a pool of spawned worker processes that import the function app
themselves, or, for `async def` ones, concurrently on one event loop in the host. No
transaction is open while one runs: a host claims the work item in one
short transaction, and records the result in another (store.py says how a dead host's
items are claimed again).

Modules: `protocol` (event and action types), `state` (what is kept per instance),
`replay` (an episode), `workers` (the pool and the activity loop), `store` (tables and
queries), `runtime` (the dispatcher and the client's operations), `status` (status JSON),
`bindings` (the client binding and its URLs), `api` (the management API), `migrations`
(the tables' own history).
"""

from local.durable.api import ManagementApi
from local.durable.bindings import (
    DEFAULT_HUB,
    WEBHOOK_PREFIX,
    bindings_for,
    client_binding,
    durable_client_names,
    management_urls,
)
from local.durable.runtime import DurableRuntime
from local.durable.workers import load_app

__all__ = [
    "DEFAULT_HUB",
    "WEBHOOK_PREFIX",
    "DurableRuntime",
    "ManagementApi",
    "bindings_for",
    "client_binding",
    "durable_client_names",
    "load_app",
    "management_urls",
]
