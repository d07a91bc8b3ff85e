"""Billed-time ledger and daily budget (no I/O; persistence in ledger_store.py).

Each session's billed seconds come from `Termination.session_duration_seconds`, or are
measured locally when the server did not say. Days are local calendar days starting at the
configured reset time; the budget, when set, stops new sessions for the rest of the day.
`billing_summary` is the `billing` section of the retained `edgecap.stats/1` message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

HEARTBEAT_SECONDS = 10.0
"""How often an open session is written down; after a crash it counts this much more."""
BilledBy = Literal["server", "local", "recovered"]
"""Where billed seconds came from: Termination, measured locally, estimated after a crash."""


@dataclass
class DayTotals:
    sessions: int = 0
    billed_seconds: float = 0.0
    speech_seconds: float = 0.0


@dataclass
class Ledger:
    reset_at: time = time(0, 0)
    budget_seconds: float | None = None
    price_per_hour: float | None = None
    """What a billed hour costs now (`[pricing]`), for the estimate; None: not known."""
    currency: str = "USD"
    days: dict[date, DayTotals] = field(default_factory=dict)

    def billing_day(self, now: datetime) -> date:
        """The billing day `now` belongs to (days start at `reset_at`, local time)."""
        r = self.reset_at
        shifted = now - timedelta(hours=r.hour, minutes=r.minute, seconds=r.second)
        return shifted.date()

    def next_reset(self, now: datetime) -> datetime:
        """When the billing day of `now` ends. With the system's local zone (what
        `datetime.now().astimezone()` gives), the offset is that of the reset day itself,
        so a daylight-saving change in between does not move it by an hour."""
        day = self.billing_day(now) + timedelta(days=1)
        if now.tzinfo is None or now.tzinfo is UTC:
            return datetime.combine(day, self.reset_at, tzinfo=now.tzinfo)
        return datetime.combine(day, self.reset_at).astimezone()

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


def _totals(t: DayTotals, open_session_seconds: float, price: float | None) -> dict[str, Any]:
    billed = t.billed_seconds + open_session_seconds
    return {
        "sessions": t.sessions,
        "speech_seconds": round(t.speech_seconds, 1),
        "billed_seconds": round(billed, 1),
        "cost": None if price is None else round(billed / 3600 * price, 4),
    }


def billing_summary(
    ledger: Ledger, now: datetime, *, open_session_seconds: float = 0.0, gate: str
) -> dict[str, Any]:
    """Today's and this month's totals and the budget, for the stats message.

    `now` is local time (naive = the system's zone). A session still open counts its running
    seconds in `billed_seconds` (today and month) and against the budget at once, but counts
    in `sessions` and `speech_seconds` only once it has closed and been recorded. `cost` is
    the billed time at the current price (an estimate: a price or model changed during
    the month re-prices all of it).
    """
    open_s = max(0.0, open_session_seconds)
    price = ledger.price_per_hour
    left = ledger.budget_left(now, open_s)
    resets_at = ledger.next_reset(now).astimezone(UTC)
    return {
        "gate": gate,
        "day": ledger.billing_day(now).isoformat(),
        "resets_at": resets_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "today": _totals(ledger.today(now), open_s, price),
        "month": _totals(ledger.month(now), open_s, price),
        "currency": ledger.currency,
        "price_per_hour": price,
        "budget_seconds": None if ledger.budget_seconds is None else float(ledger.budget_seconds),
        "budget_left_seconds": None if left is None else round(max(0.0, left), 1),
        "budget_exhausted": ledger.exhausted(now, open_s),
    }
