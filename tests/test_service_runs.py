"""The service run's orchestration steps (dtbase_core/service_runs.py) driven by a
stand-in context, without the Durable runtime: what each step asks for, at what time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dtbase_core.orm.base import HttpMethod
from dtbase_core.service_runs import RunJob, orchestrate
from dtbase_core.services import CALLED, RunResult, RunTarget

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TARGET = RunTarget(1, "http://s.test/run", HttpMethod.POST, False, None, {"p": 1})


class Context:
    """Records what the orchestrator asks for; the test answers each ask in turn, and moves
    the clock (as each episode's current_utc_datetime would)."""

    def __init__(self, limit: float) -> None:
        self.current_utc_datetime = T0
        self.asked: list[tuple[Any, ...]] = []
        self._input = RunJob(7, TARGET, limit).to_json()

    def get_input(self) -> Any:
        return self._input

    def call_activity(self, name: str, payload: Any) -> tuple[Any, ...]:
        return ("activity", name, payload)

    def call_activity_with_retry(self, name: str, retry: Any, payload: Any) -> tuple[Any, ...]:
        return ("activity", name, payload)

    def create_timer(self, fire_at: datetime) -> tuple[Any, ...]:
        return ("timer", fire_at)


def drive(context: Context, answers: list[Any]) -> tuple[list[tuple[Any, ...]], Any]:
    """Run the steps: each ask gets the next answer (called first if it is a function; an
    Exception is thrown in; a timer's answer is ignored and the clock goes to its fire
    time). The asks and the output."""
    steps = orchestrate(context, "call", "poll", "record", record_retry=None)
    asked: list[tuple[Any, ...]] = []
    ask = next(steps)
    answers = list(answers)
    while True:
        asked.append(ask)
        if ask[0] == "timer":
            context.current_utc_datetime = ask[1]
            answer: Any = None
        else:
            answer = answers.pop(0)
            if callable(answer):
                answer = answer()
        try:
            ask = steps.throw(answer) if isinstance(answer, Exception) else steps.send(answer)
        except StopIteration as done:
            return asked, done.value


def accepted(location: str, retry_after: float | None) -> dict[str, Any]:
    return RunResult(200, CALLED, 202, {"q": 1}, location, retry_after).to_json()


def test_a_202_is_polled_with_its_retry_after_clamped() -> None:
    context = Context(limit=600)
    final = RunResult(200, CALLED, 200, {"done": True}).to_json()
    asked, output = drive(
        context,
        [
            accepted("http://s.test/j", 0),
            accepted("http://s.test/j", 1000),
            accepted("http://s.test/j", None),
            final,
            None,
        ],
    )
    kinds = [(a[0], a[1] if a[0] == "activity" else a[1] - T0) for a in asked]
    assert kinds == [
        ("activity", "call"),
        ("timer", timedelta(seconds=1)),  # Retry-After 0: at least a second
        ("activity", "poll"),
        ("timer", timedelta(seconds=61)),  # 1000: at most a minute
        ("activity", "poll"),
        ("timer", timedelta(seconds=66)),  # none: five seconds
        ("activity", "poll"),
        ("activity", "record"),
    ]
    # Each poll is bounded by what is left of the run, and names the run's limit.
    polls = [a[2] for a in asked if a[:2] == ("activity", "poll")]
    assert [p["timeout"] for p in polls] == [599, 539, 534]
    assert {p["limit"] for p in polls} == {600} and polls[0]["location"] == "http://s.test/j"
    assert asked[-1][2] == {"run_id": 7, "result": output}
    assert output == {**final, "location": None, "retry_after": None}


def test_the_limit_cuts_the_last_timer_and_the_run_times_out() -> None:
    context = Context(limit=3)
    asked, output = drive(context, [accepted("/j", 2), accepted("/j", 2), None])
    timers = [a[1] - T0 for a in asked if a[0] == "timer"]
    assert timers == [timedelta(seconds=2), timedelta(seconds=3)]
    assert output["status"] == output["status_code"] == 504
    assert output["detail"] == "Service timed out after 3 s" and output["response_json"] is None


def test_an_activity_that_raises_fails_the_call_or_times_it_out_past_the_limit() -> None:
    context = Context(limit=600)
    _, output = drive(context, [RuntimeError("Activity function 'call' failed: boom\nmore"), None])
    assert (output["status"], output["detail"]) == (
        502,
        "Service call failed: Activity function 'call' failed: boom",
    )

    context = Context(limit=10)

    def late() -> Exception:
        context.current_utc_datetime = T0 + timedelta(seconds=11)
        return RuntimeError("the host went away")

    _, output = drive(context, [late, None])
    assert (output["status"], output["detail"]) == (504, "Service timed out after 10 s")
