"""NCRONTAB, as Azure Functions reads it: six fields, seconds first
(`second minute hour day month day-of-week`), in UTC. The one parser in the project: the
local host's timers (local/scheduler.py) and user schedules (dtbase_core/schedules.py)
both use it.

cronsim does the arithmetic (it detects the seconds field from the count of fields);
NCrontab differs from Vixie cron in one respect, set here: a day must match both the
day-of-month and the day-of-week fields, where Vixie cron accepts either.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

FIELDS = "second minute hour day month day-of-week"
_SECOND = timedelta(seconds=1)


class CronError(ValueError):
    """An expression that is not six-field NCRONTAB; the message says why."""


class Cron:
    """A parsed NCRONTAB expression; every instant given and returned is aware, UTC."""

    def __init__(self, expression: str) -> None:
        self.expression = " ".join(expression.split())
        if len(self.expression.split()) != 6:
            raise CronError(
                f"{expression!r} is not an NCRONTAB expression: it needs six fields ({FIELDS})"
            )
        try:
            next(self._sim(datetime.now(UTC)))
        except CronSimError as exc:
            raise CronError(f"{expression!r} is not an NCRONTAB expression: {exc}") from exc
        except StopIteration:  # such as 30 February
            raise CronError(f"{expression!r} never fires: no date matches it") from None

    def _sim(self, start: datetime, reverse: bool = False) -> CronSim:
        sim = CronSim(self.expression, start.astimezone(UTC), reverse=reverse)
        sim.day_and = True  # NCrontab: day-of-month AND day-of-week
        return sim

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment`."""
        return next(self._sim(moment))

    def next_times(self, moment: datetime, count: int) -> list[datetime]:
        """The first `count` occurrences strictly after `moment` (fewer if no more come)."""
        sim = self._sim(moment)
        return [when for _, when in zip(range(count), sim, strict=False)]

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The last occurrence at or before `moment` (None if there is none, as for a
        date that never comes round, such as 30 February)."""
        whole = moment.replace(microsecond=0)
        try:
            found = next(self._sim(whole + _SECOND, reverse=True))
        except StopIteration:
            return None
        return found if found <= moment else None
