"""The engine's billing side: voice gating per frame, the ledger and the daily budget.

Decisions come from the sans-I/O `Admission` (gate + budget) and `Ledger`; this class feeds
them the frames, the session's turn state and the clocks, records each session (through a
`BillingStore`, which persists it) and says when the budget runs out or is renewed. The
engine acts on what it returns (open, close, report a state).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from edgecap.audio.frame import Frame
from edgecap.billing.admission import Action, Admission, AdmissionSettings
from edgecap.billing.gate import GateMode, GateSettings, SpeechDetector
from edgecap.billing.ledger import HEARTBEAT_SECONDS, BilledBy, Ledger
from edgecap.turns.transcript import TranscriptTurn


class PendingAudio(Protocol):
    """The engine's audio buffer, as far as the gate trims it."""

    @property
    def backlog_ms(self) -> int: ...
    @property
    def max_ms(self) -> int: ...
    def discard_unsent(self, keep_ms: int, *, before: float | None = None) -> object: ...


class EndedSession(Protocol):
    """What the gate needs of an ended session (`engine.types.SessionResult`)."""

    @property
    def session_id(self) -> str: ...
    @property
    def server_billed_seconds(self) -> float | None: ...
    @property
    def duration(self) -> float: ...


class BillingStore(Protocol):
    """Where sessions are recorded (`edgecap.billing.store.LedgerStore`)."""

    def maintain(self) -> None: ...
    def session_opened(self, session_id: str, now: float) -> None: ...
    def heartbeat(self, session_id: str, now: float) -> None: ...
    def session_closed(
        self,
        session_id: str,
        now: float,
        billed_seconds: float,
        speech_seconds: float,
        source: BilledBy,
    ) -> object: ...


def local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True, slots=True)
class BudgetChange:
    """The budget ran out (`exhausted`) or a new billing day began; `detail` for the status."""

    exhausted: bool
    detail: str


class BillingGuard:
    def __init__(
        self,
        admission: AdmissionSettings | None = None,
        *,
        vad: SpeechDetector | None = None,
        ledger: Ledger | None = None,
        store: BillingStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = local_now,
    ) -> None:
        self.admission = Admission(admission or AdmissionSettings(GateSettings(GateMode.ALWAYS)))
        self.ledger = ledger if ledger is not None else Ledger()
        self._vad = vad
        self._store = store
        self._clock = clock
        self._wall = wall
        self.resets_at: datetime | None = None
        """While the budget is used up: when the next billing day begins."""
        self._session_id: str | None = None
        self._began_at: float | None = None
        self._heartbeat_at = 0.0
        self._speech = 0.0
        self.only_listening = False
        """After the last frame: the voice gate waits for speech, no session is open or
        wanted (quiet audio may then reach `frame` late, in batches: `AlsaCapture`)."""

    @property
    def budget_out(self) -> bool:
        return self.admission.budget_out

    @property
    def voice(self) -> bool:
        return self.admission.voice

    def set_admission(
        self, settings: AdmissionSettings, vad: SpeechDetector | None, *, live: bool, now: float
    ) -> None:
        """Another gate from now on (`session.gate` changed at run time). A session open
        or opening (`live`) under the voice gate closes after `idle_close_seconds` without
        speech from `now`; a used-up budget stays used up."""
        budget_out = self.admission.budget_out
        adm = self.admission = Admission(settings)
        self._vad = vad
        if adm.voice and live:
            adm.gate.open, adm.gate.last_voice_at, adm.wanted = True, now, True
        if budget_out:
            adm.exhaust(now)

    # -- per frame -----------------------------------------------------------------------

    def frame(self, frame: Frame, buffer: PendingAudio, turn_open: bool | None) -> Action:
        """A captured frame (already in `buffer`); `turn_open` is None without a session.
        Returns what to do with the session (open, close, nothing); trims the buffer to the
        pre-roll while no session is wanted."""
        adm = self.admission
        live = turn_open is not None
        listen = adm.voice and (live or not adm.budget_out)  # no VAD while nothing can open
        speech = False
        if listen and self._vad is not None:  # (also while a turn is open: its end is ours)
            speech = self._vad.is_speech(frame.pcm)
        action = adm.frame(
            frame.monotonic,
            speech,
            session_live=live,
            turn_open=bool(turn_open),
            backlog_ms=buffer.backlog_ms,
        )
        if action is Action.OPEN and not live:
            buffer.discard_unsent(buffer.max_ms, before=adm.preroll_from)
        if not adm.wanted and not live:  # only the pre-roll is needed until speech starts
            buffer.discard_unsent(adm.s.keep_ms)
        self.only_listening = adm.voice and not live and not adm.wanted
        return action

    # -- sessions ------------------------------------------------------------------------

    def session_began(self, session_id: str) -> None:
        self._session_id, self._began_at = session_id, self._clock()
        self.admission.session_began(self._began_at)
        self._heartbeat_at, self._speech = self._began_at, 0.0
        if self._store is not None:
            self._store.session_opened(session_id, time.time())

    def turn(self, turn: TranscriptTurn) -> None:
        """A final turn: its span counts as speech of the session."""
        if turn.started_at is not None and turn.ended_at is not None:
            self._speech += max(0.0, turn.ended_at - turn.started_at)

    def session_ended(self, r: EndedSession) -> float:
        """Record the session: the server's billed seconds, else measured. Returns them."""
        server = r.server_billed_seconds
        source: BilledBy = "server" if server is not None else "local"
        billed = float(server) if server is not None else r.duration
        if self._store is not None:
            self._store.session_closed(r.session_id, time.time(), billed, self._speech, source)
        else:
            self.ledger.record(self._wall(), billed, self._speech)
        self._session_id = self._began_at = None
        return billed

    def open_session_seconds(self) -> float:
        """How long the current session has been open (billed, not yet recorded)."""
        return 0.0 if self._began_at is None else max(0.0, self._clock() - self._began_at)

    # -- every second --------------------------------------------------------------------

    def tick(self) -> BudgetChange | None:
        """Heartbeat of the open session; the budget running out or being renewed."""
        mono, adm = self._clock(), self.admission
        if self._store is not None:
            self._store.maintain()  # the ledger file still there? the disk back?
        due = mono - self._heartbeat_at >= HEARTBEAT_SECONDS
        if self._store is not None and self._session_id is not None and due:
            self._heartbeat_at = mono
            self._store.heartbeat(self._session_id, time.time())
        now = self._wall()
        if adm.budget_out:
            if self.resets_at is None or now < self.resets_at:
                return None
            adm.replenish()
            self.resets_at = None
            return BudgetChange(False, "a new billing day began: the daily budget is available")
        open_s = self.open_session_seconds()
        if not self.ledger.exhausted(now, open_s):
            return None
        adm.exhaust(mono)
        self.resets_at = self.ledger.next_reset(now)
        budget = (self.ledger.budget_seconds or 0) / 60
        billed = (self.ledger.today(now).billed_seconds + open_s) / 60
        detail = (
            f"daily budget of {budget:g} min used up ({billed:.1f} min billed); no session "
            f"until {self.resets_at.isoformat(timespec='seconds')}"
        )
        if self._session_id is not None:
            detail += "; closing the open session at the next pause"
        return BudgetChange(True, detail)
