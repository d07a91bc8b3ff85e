"""Whether a billed session should be open right now (no I/O).

Combines the voice gate (`edgecap.billing.gate`) and the daily budget into per-frame decisions for
the engine:

- `always`: a session is wanted whenever the budget allows.
- `voice`: a session is wanted from a voice onset until the detector has heard no speech
  for `idle_close_seconds` and no backlog waits to be sent ("busy": closing then would bill
  a reconnect for audio that is still owed to the server). The talk is then over: a turn
  the server still has open is ended at once (`END_TURN`: ForceEndpoint, in order after the
  audio) and the session is closed as soon as that turn is final, or after
  `end_turn_wait_seconds` at the latest (Terminate makes the server finish it anyway).
  The detector's verdict decides, not the server's open turn, so the session does not pay
  for the server's own end-of-turn silence; speech resuming meanwhile keeps it open.
  At most `max_sessions_per_minute` sessions open in any minute (AssemblyAI limits new
  sessions per minute per account: 5 on the free tier): once that many opened in the last
  60 s, a quiet session is kept (billed) until closing it would let the next one open.
- budget used up: no session is wanted; an open one is closed at the next quiet point (no
  open turn and, with `voice`, no speech the detector hears), or `budget_grace_seconds`
  after the budget ran out at the latest.

While no session is wanted the captured audio is not needed beyond the pre-roll: `keep_ms`
says how much unsent audio to keep (the pre-roll plus the detector's onset window and lag),
and at an onset `preroll_from` says where the audio to send starts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from edgecap.billing.gate import GateDecision, GateMode, GateSettings, VoiceGate

DETECTOR_LAG_MS = 500
"""How late the detector flags speech (pymicro-vad: median 0.28 s, at most 0.49 s on the
fixtures): the pre-roll counts back from the first flagged frame minus this, so that it
lies before the real start of speech."""


class Action(StrEnum):
    NONE = "none"
    OPEN = "open"  # speech started: open a session (send from `preroll_from`)
    END_TURN = "end_turn"  # quiet long enough, a turn is open: end it (ForceEndpoint)
    CLOSE_IDLE = "idle"  # quiet long enough and no turn open: terminate the session
    CLOSE_BUDGET = "budget"  # the budget ran out: terminate at this quiet point


@dataclass(frozen=True, slots=True)
class AdmissionSettings:
    gate: GateSettings
    budget_grace_seconds: float = 60.0
    busy_backlog_ms: int = 1000
    """Unsent audio beyond this keeps a voice session open (it is owed to the server)."""
    end_turn_wait_seconds: float = 2.0
    """After `END_TURN`, how long to wait for the final turn before closing anyway."""
    max_sessions_per_minute: int = 20
    """Voice sessions opened in any 60 s, at most (quiet sessions are kept rather than
    closed and reopened beyond it)."""

    @property
    def keep_ms(self) -> int:
        g = self.gate
        return g.preroll_ms + g.onset_window_ms + 2 * DETECTOR_LAG_MS


class Admission:
    def __init__(self, settings: AdmissionSettings) -> None:
        self.s = settings
        self.gate = VoiceGate(settings.gate)
        self.voice = settings.gate.mode is GateMode.VOICE
        self.wanted = not self.voice
        self.budget_out = False
        self._budget_close_by: float | None = None
        self._close_sent = False
        self._ending_since: float | None = None  # END_TURN sent, waiting for the final
        self._opened: deque[float] = deque()  # when the sessions of the last minute began
        self._close_owed = False  # the talk ended while the session was still opening
        self.preroll_from: float | None = None
        """Monotonic capture time from which audio is sent at the last onset."""

    def frame(
        self,
        now: float,
        speech: bool,
        *,
        session_live: bool,
        turn_open: bool,
        backlog_ms: int,
    ) -> Action:
        """One captured frame at monotonic capture time `now`, with the detector's verdict
        (`speech` is ignored with `always`)."""
        if self.budget_out:
            if not session_live or self._close_sent:
                return Action.NONE
            if self.voice:  # the detector too must hear a pause (speech not yet in a turn)
                self.gate.feed(now, speech, turn_open=True)
                self.gate.session_ended()  # (its decisions do not count now)
            quiet = not turn_open and not (self.voice and self.gate.speaking)
            by = self._budget_close_by
            if quiet or (by is not None and now >= by):
                self._close_sent = True
                return Action.CLOSE_BUDGET
            return Action.NONE
        if not self.voice:
            return Action.NONE
        busy = backlog_ms > self.s.busy_backlog_ms or (session_live and self._at_session_cap(now))
        decision = self.gate.feed(now, speech, turn_open=busy)
        if decision is GateDecision.OPEN:
            self.wanted = True
            self._ending_since = None
            self._close_owed = False
            onset = self.gate.onset_at if self.gate.onset_at is not None else now
            self.preroll_from = onset - (self.s.gate.preroll_ms + DETECTOR_LAG_MS) / 1000
            return Action.OPEN
        if not session_live:
            self._ending_since = None
            if decision is GateDecision.CLOSE:
                self.wanted = False
                self._close_owed = True  # a session still opening is closed once it has begun
            return Action.NONE
        if self._close_owed and not busy:
            self._close_owed = False
            decision = GateDecision.CLOSE
        if decision is GateDecision.CLOSE:
            self.wanted = False
            if turn_open:
                self._ending_since = now
                return Action.END_TURN
            return Action.CLOSE_IDLE
        ending = self._ending_since
        if ending is not None and (not turn_open or now - ending >= self.s.end_turn_wait_seconds):
            self._ending_since = None
            return Action.CLOSE_IDLE
        return Action.NONE

    def session_began(self, now: float) -> None:
        """A session began (any: an onset's, a retry, a rotation): counted for the cap."""
        self._opened.append(now)

    def _at_session_cap(self, now: float) -> bool:
        """As many sessions opened in the last minute as allowed: closing this one now
        would make the next one wait (or trip the server's limit)."""
        opened = self._opened
        while opened and now - opened[0] >= 60.0:
            opened.popleft()
        return len(opened) >= self.s.max_sessions_per_minute

    def exhaust(self, now: float) -> None:
        """The budget ran out at monotonic time `now`: no session is wanted any more."""
        self.budget_out = True
        self.wanted = False
        self._budget_close_by = now + self.s.budget_grace_seconds
        self._close_sent = False
        self.gate.session_ended()

    def replenish(self) -> None:
        """A new billing day: `always` wants a session again; `voice` waits for speech."""
        self.budget_out = False
        self._budget_close_by = None
        self.wanted = not self.voice
        self.gate.session_ended()  # the next onset opens a session
