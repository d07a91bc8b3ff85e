"""Bounds on what a session does with what the server sends (no I/O).

A broken or hostile server can send partials as fast as the connection carries them, and
malformed messages by the thousand. Neither may flood MQTT or the log, or grow memory:

- `PartialThrottle`: at most `PARTIALS_PER_SECOND` partials are handed on. One that comes
  too soon waits (only the newest: it replaces any that waits) until its slot, so the
  latest text is always published; when the turn becomes final its waiting partial is
  handed on first, the last text before the final.
- `WarningBudget`: at most `burst` warnings per `window` seconds; the rest are counted,
  and the next warning that is logged says how many were not.
- `check_turn_audio`: word times beyond the audio the session sent are bogus.

`PartialPacer` and `InboundLog` are the session's thin adapters around the first two (a
loop timer, the log).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from edgecap.providers.turn import ProtocolError, Turn

log = logging.getLogger(__name__)

PARTIALS_PER_SECOND = 10
WARNINGS_PER_WINDOW = 10
WARNING_WINDOW_SECONDS = 60.0


class PartialThrottle:
    def __init__(self, per_second: float = PARTIALS_PER_SECOND) -> None:
        self.interval = 1.0 / per_second
        self._last: float | None = None  # when the last partial was handed on
        self.pending: Turn | None = None
        self.superseded = 0
        """Partials never handed on (a newer one replaced them, or their turn ended)."""

    def offer(self, turn: Turn, now: float) -> Turn | None:
        """A partial arrived: the partial to hand on now, or None when it waits (`due`)."""
        if self.pending is not None:
            self.superseded += 1
            self.pending = None
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            return turn
        self.pending = turn
        return None

    @property
    def due(self) -> float | None:
        """When the waiting partial may be handed on (None: nothing waits)."""
        if self.pending is None or self._last is None:
            return None
        return self._last + self.interval

    def release(self, now: float) -> Turn | None:
        """The waiting partial, to hand on now, once its slot (`due`) has come; None before
        (a partial handed on meanwhile took the slot) or when nothing waits."""
        due = self.due
        if due is None or now < due:
            return None
        turn, self.pending = self.pending, None
        self._last = now
        return turn

    def final(self, turn_order: int, now: float) -> Turn | None:
        """Turn `turn_order` became final: its waiting partial, to hand on before the final
        (a waiting partial of another turn is dropped)."""
        turn, self.pending = self.pending, None
        if turn is None:
            return None
        if turn.turn_order != turn_order:
            self.superseded += 1
            return None
        self._last = now
        return turn


class WarningBudget:
    def __init__(
        self, burst: int = WARNINGS_PER_WINDOW, window: float = WARNING_WINDOW_SECONDS
    ) -> None:
        self.burst = burst
        self.window = window
        self._started: float | None = None
        self._logged = 0
        self.held = 0
        """Warnings not logged since the last one that was."""

    def allow(self, now: float) -> bool:
        """Whether to log a warning now; when not, it is counted in `held`."""
        if self._started is None or now - self._started >= self.window:
            self._started, self._logged = now, 0
        if self._logged >= self.burst:
            self.held += 1
            return False
        self._logged += 1
        return True

    def take_held(self) -> int:
        """How many were held back since the last logged warning (and reset the count)."""
        held, self.held = self.held, 0
        return held


class PartialPacer:
    """Hands partials to `emit` through a `PartialThrottle`; a waiting one from a loop timer."""

    def __init__(
        self, emit: Callable[[Turn], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._emit = emit
        self._clock = clock
        self.throttle = PartialThrottle()
        self._timer: asyncio.TimerHandle | None = None

    def offer(self, turn: Turn) -> None:
        now = self._clock()
        ready = self.throttle.offer(turn, now)
        if ready is not None:
            self._emit(ready)
        else:
            self._schedule(now)

    def _schedule(self, now: float) -> None:
        due = self.throttle.due
        if due is not None and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, due - now), self._slot)

    def _slot(self) -> None:
        self._timer = None
        now = self._clock()
        turn = self.throttle.release(now)
        if turn is not None:
            self._emit(turn)
        else:  # the slot moved (a partial was handed on meanwhile): wait for the new one
            self._schedule(now)

    def final(self, turn_order: int) -> None:
        """Turn `turn_order` is final: hand on its waiting partial (before the final)."""
        waiting = self.throttle.final(turn_order, self._clock())
        self.close()
        if waiting is not None:
            self._emit(waiting)

    def close(self) -> None:
        """Nothing waits any more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.throttle.pending = None


class InboundLog:
    """One WARNING line per unusable (or repaired) server message, within a budget."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.budget = WarningBudget()

    def warning(self, message: str, *args: object) -> None:
        """Log `message % args` as a WARNING unless the budget is used up (then counted)."""
        if self.budget.allow(self._clock()):
            held = self.budget.take_held()
            note = f"; {held} more such message(s) were not logged" if held else ""
            log.warning(message + "%s", *args, note)

    def skipped(self, exc: ProtocolError) -> None:
        self.warning(
            "skipped a malformed message from the streaming server, the session goes on: %s "
            "(a server or proxy fault; if it repeats, check that streaming.url is "
            "AssemblyAI's v3 endpoint)",
            exc,
        )

    def repaired(self, turn: Turn) -> None:
        if turn.repairs:
            self.warning(
                "the streaming server sent turn %d with text that cannot be passed on as it "
                "is; repaired and used: %s",
                turn.turn_order,
                "; ".join(turn.repairs),
            )

    def close(self) -> None:
        """At the end of the session: the count of warnings that were held back."""
        held = self.budget.take_held()
        if held:
            log.warning(
                "%d more unusable message(s) from the streaming server were not logged", held
            )
