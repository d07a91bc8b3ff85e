"""Billed-time ledger and daily budget (no I/O; persistence in ledger_store.py).

Each session's billed seconds come from `Termination.session_duration_seconds`, or are
measured locally when the server did not say. Days are local calendar days starting at the
configured reset time; the budget, when set, stops new sessions for the rest of the day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta


@dataclass
class DayTotals:
    sessions: int = 0
    billed_seconds: float = 0.0
    speech_seconds: float = 0.0


@dataclass
class Ledger:
    reset_at: time = time(0, 0)
    budget_seconds: float | None = None
    days: dict[date, DayTotals] = field(default_factory=dict)

    def billing_day(self, now: datetime) -> date:
        """The billing day `now` belongs to (days start at `reset_at`, local time)."""
        shifted = now - timedelta(hours=self.reset_at.hour, minutes=self.reset_at.minute)
        return shifted.date()

    def next_reset(self, now: datetime) -> datetime:
        day = self.billing_day(now) + timedelta(days=1)
        return datetime.combine(day, self.reset_at, tzinfo=now.tzinfo)

    def record(self, now: datetime, billed_seconds: float, speech_seconds: float) -> DayTotals:
        totals = self.days.setdefault(self.billing_day(now), DayTotals())
        totals.sessions += 1
        totals.billed_seconds += billed_seconds
        totals.speech_seconds += speech_seconds
        return totals

    def today(self, now: datetime) -> DayTotals:
        return self.days.get(self.billing_day(now), DayTotals())

    def month(self, now: datetime) -> DayTotals:
        day = self.billing_day(now)
        out = DayTotals()
        for d, t in self.days.items():
            if (d.year, d.month) == (day.year, day.month):
                out.sessions += t.sessions
                out.billed_seconds += t.billed_seconds
                out.speech_seconds += t.speech_seconds
        return out

    def budget_left(self, now: datetime, open_session_seconds: float = 0.0) -> float | None:
        """Seconds left today (None = no budget), counting a session still open."""
        if self.budget_seconds is None:
            return None
        return self.budget_seconds - self.today(now).billed_seconds - open_session_seconds

    def exhausted(self, now: datetime, open_session_seconds: float = 0.0) -> bool:
        left = self.budget_left(now, open_session_seconds)
        return left is not None and left <= 0
