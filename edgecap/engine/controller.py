"""The session lifecycle as a pure state machine (sans-I/O, in the style of h11).

`SessionController.handle(event)` takes what happened (audio came or went, the gate wants a
session or not, a token is ready, the server sent `Begin`, a turn arrived, the session
ended with a classified cause, a timer fired, the budget changed, the daemon stops) and
returns what to do (fetch a token, connect, close with a reason, wait, report a state).
It owns every decision of the lifecycle: when a session opens, the retry policy and the
quick-failure breaker (`RetryPolicy`), rotation before the cap (`RotationPlan`), closing
when idle or out of budget, and stopping. It never reads a clock, sleeps or touches a
socket: times come in the events. `engine.runner.Engine` carries out the actions.

Phases: WAIT_AUDIO -> WAIT_SPEECH -> TOKEN -> CONNECTING -> STREAMING -> CLOSING, then
BACKOFF after a failure (or straight back to WAIT_AUDIO after a deliberate end or an
expiry), STOPPED after `Stop`. MUTED while the privacy mute is on (`MuteChanged`): an open
session is closed at once without sending what is buffered, one opening is abandoned, no
token is fetched; a mute is not a failure (no retry is counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from edgecap.engine.events import (
    Abandon,
    Action,
    AudioChanged,
    Began,
    BudgetChanged,
    CheckDue,
    Close,
    CloseRequested,
    Connect,
    Event,
    FetchToken,
    Finished,
    MuteChanged,
    OpenFailed,
    Prefetch,
    Report,
    Retrying,
    ScheduleCheck,
    SessionEnded,
    Start,
    Stop,
    TokenReady,
    TurnActivity,
    Wait,
    WaitOver,
    WantChanged,
)
from edgecap.engine.policy import RetryPolicy
from edgecap.engine.rotation import RotationPlan
from edgecap.engine.states import CloseReason, EndedBy, EngineState
from edgecap.providers.failures import Classified, ErrorClass

MUTED_DETAIL = "privacy mute on: no audio leaves the device"
CHECK_SECONDS = 0.25
"""Inside the rotation window: how often a quiet point is looked for between turns."""


class Phase(StrEnum):
    NEW = "new"
    WAIT_AUDIO = "wait_audio"
    WAIT_SPEECH = "wait_speech"
    TOKEN = "token"  # noqa: S105 - a phase, not a secret
    CONNECTING = "connecting"
    STREAMING = "streaming"
    CLOSING = "closing"
    BACKOFF = "backoff"
    MUTED = "muted"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    max_session_seconds: float = 3600.0
    rotation_window_seconds: float | None = None
    voice: bool = False
    """The voice gate is on: waiting for speech is reported as `listening`."""
    prefetch: bool = True
    """Keep a spare token while a session streams (False: one per connect)."""


@dataclass
class Counters:
    """What the engine counted, once each (published in `status` and `stats`)."""

    sessions: int = 0
    reconnects: int = 0
    turns: int = 0
    frames_dropped: int = 0
    gaps: int = 0
    token_failures: int = 0
    """Failed token requests (including background renewals of the spare token)."""


@dataclass
class _Session:
    session_id: str
    began: float
    plan: RotationPlan
    last_final_at: float | None = None
    last_turn_message_at: float | None = None


@dataclass
class SessionController:
    policy: RetryPolicy
    settings: ControllerSettings = field(default_factory=ControllerSettings)
    wanted: bool = True
    counters: Counters = field(default_factory=Counters)
    phase: Phase = Phase.NEW
    audio_ok: bool = False
    budget_out: bool = False
    stopping: bool = False
    muted: bool = False
    close_reason: CloseReason | None = None
    """Why the current session is being closed (set with `Close`)."""
    session: _Session | None = None
    attempt: int = 0
    """Failed attempts in a row since the last session that ended without failing."""
    _audio_loss_reported: bool = True  # until audio first flows, the daemon's state stands
    _reported: EngineState | None = None
    _pending_close: CloseReason | None = None
    _budget_report: Report | None = None  # said again when the mute is lifted

    # -- the one entry point -----------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        if self.phase is Phase.STOPPED:
            return []
        match event:
            case Start():
                return self._advance()
            case AudioChanged(ok=ok, reported=reported):
                return self._audio(ok, reported)
            case WantChanged(wanted=wanted):
                self.wanted = wanted
                return self._advance() if self.phase is Phase.WAIT_SPEECH and wanted else []
            case CloseRequested(reason=reason):
                return self._close_requested(reason)
            case TokenReady():
                if self.phase is not Phase.TOKEN:
                    return []
                self.phase = Phase.CONNECTING
                return [Connect()]
            case Began():
                return self._began(event)
            case OpenFailed(classified=classified):
                return self._failed(classified) if self._opening else []
            case TurnActivity():
                return self._turn(event)
            case CheckDue():
                return self._check(event)
            case SessionEnded():
                return self._ended(event)
            case WaitOver():
                return self._advance() if self.phase is Phase.BACKOFF else []
            case BudgetChanged():
                return self._budget(event)
            case Stop():
                return self._stop()
            case MuteChanged(muted=muted):
                return self._mute(muted)
        return []  # pragma: no cover - every event type is matched above

    # -- between sessions --------------------------------------------------------------

    @property
    def _opening(self) -> bool:
        return self.phase in (Phase.TOKEN, Phase.CONNECTING)

    def _advance(self) -> list[Action]:
        """Decide the next step when no session is open or opening."""
        if self.stopping:
            self.phase = Phase.STOPPED
            return [Finished()]
        if self.muted:
            self.phase = Phase.MUTED
            return [Prefetch(active=False)]
        if not self.audio_ok:
            self.phase = Phase.WAIT_AUDIO
            out: list[Action] = [Prefetch(active=False)]
            if not self._audio_loss_reported and self._reported is not EngineState.IDLE:
                out += self._report(EngineState.IDLE, "no session: waiting for audio")
            return out
        if not self.wanted:
            self.phase = Phase.WAIT_SPEECH
            if self.settings.voice:
                return self._report(EngineState.LISTENING, "no session open: waiting for speech")
            return []
        self.phase = Phase.TOKEN
        self._pending_close = None
        return [FetchToken()]

    def _audio(self, ok: bool, reported: bool) -> list[Action]:
        self.audio_ok = ok
        if ok:
            loss_reported, self._audio_loss_reported = self._audio_loss_reported, False
            if self.muted and loss_reported:  # the daemon said audio_unavailable over it
                return self._report(EngineState.MUTED, MUTED_DETAIL)
            return self._advance() if self.phase is Phase.WAIT_AUDIO else []
        self._audio_loss_reported = reported
        if self.phase is Phase.WAIT_SPEECH:
            return self._advance()
        return self._close_requested(CloseReason.AUDIO_LOST)

    def _close_requested(self, reason: CloseReason) -> list[Action]:
        if self.phase is Phase.STREAMING:
            return self._close(reason, drain=True)
        if self._opening:
            self._pending_close = reason  # closed as soon as it has begun (it is billed)
        return []

    def _close(self, reason: CloseReason, *, drain: bool) -> list[Action]:
        self.phase = Phase.CLOSING
        self.close_reason = reason
        return [Close(reason, drain)]

    # -- a session ---------------------------------------------------------------------

    def _began(self, event: Began) -> list[Action]:
        if self.phase is not Phase.CONNECTING:
            return []
        s = self.settings
        self.policy.session_began(event.now)
        plan = RotationPlan.for_session(
            event.now,
            s.max_session_seconds,
            expires_in_s=event.expires_in,
            window_s=s.rotation_window_seconds,
        )
        self.session = _Session(event.session_id, event.now, plan)
        self.phase = Phase.STREAMING
        self.close_reason = None
        self.counters.sessions += 1
        out: list[Action] = []
        if s.prefetch:
            out.append(Prefetch(active=True))
        out += self._report(EngineState.STREAMING, event.note, session_id=event.session_id)
        if self._pending_close is not None or self.stopping:
            reason = CloseReason.STOP if self.stopping else self._pending_close
            assert reason is not None
            return out + self._close(reason, drain=True)
        out.append(ScheduleCheck(plan.window_start))
        return out

    def _turn(self, event: TurnActivity) -> list[Action]:
        session = self.session
        if session is None or self.phase is not Phase.STREAMING:
            return []
        session.last_turn_message_at = event.now
        if event.final:
            session.last_final_at = event.now
        return self._rotate_if_due(event.now, event.turn_open, event.token_ready)

    def _check(self, event: CheckDue) -> list[Action]:
        session = self.session
        if session is None or self.phase is not Phase.STREAMING:
            return []
        out = self._rotate_if_due(event.now, event.turn_open, event.token_ready)
        if out:
            return out
        plan = session.plan
        return [ScheduleCheck(event.now + max(0.01, min(CHECK_SECONDS, plan.deadline - event.now)))]

    def _rotate_if_due(self, now: float, turn_open: bool, token_ready: bool) -> list[Action]:
        session = self.session
        assert session is not None
        why = session.plan.decide(
            now,
            turn_open=turn_open,
            last_final_at=session.last_final_at,
            last_turn_message_at=session.last_turn_message_at,
            token_ready=token_ready or not self.settings.prefetch,
        )
        if why is None:
            return []
        return self._close(CloseReason(why), drain=False)

    def _ended(self, event: SessionEnded) -> list[Action]:
        if self.phase not in (Phase.STREAMING, Phase.CLOSING):
            return []
        c = event.classified
        if self.muted:  # closed for the mute (or failing meanwhile): not a failure
            self.policy.session_ended(event.now, failed=False)
            self.session = None
            return self._advance()
        over = c is not None and c.error_class is ErrorClass.SESSION_OVER
        failed = event.ended_by is EndedBy.SERVER and not over
        self.policy.session_ended(event.now, failed=failed)
        self.session = None
        if failed and c is not None:
            return self._failed(c)
        self.attempt = 0
        return self._advance()

    def _failed(self, classified: Classified) -> list[Action]:
        if self.stopping:
            self.phase = Phase.STOPPED
            return [Finished()]
        decision = self.policy.next(classified)
        out: list[Action] = []
        if decision.discard_spare:  # re-mint; no background refills until a session works
            out.append(Prefetch(active=False, discard=True))
        self.attempt += 1
        self.counters.reconnects += 1
        out.append(Retrying(classified, decision, self.attempt))
        out += self._report(
            EngineState(decision.state),
            classified.line(),
            error_class=classified.error_class,
            retry_in=decision.delay,
        )
        self.phase = Phase.BACKOFF
        out.append(Wait(decision.delay))
        return out

    # -- budget and stop ---------------------------------------------------------------

    def _budget(self, event: BudgetChanged) -> list[Action]:
        self.budget_out = event.exhausted
        if event.exhausted:
            report = Report(EngineState.BUDGET_EXHAUSTED, event.detail, resets_at=event.resets_at)
            self._budget_report = report
            if self.stopping or self.muted:
                return []
            self._reported = EngineState.BUDGET_EXHAUSTED
            return [report]
        self._budget_report = None
        if self.muted:
            return []
        state = EngineState.LISTENING if self.settings.voice else EngineState.IDLE
        return self._report(state, event.detail)

    def _stop(self) -> list[Action]:
        self.stopping = True
        if self.phase is Phase.STREAMING:
            return self._close(CloseReason.STOP, drain=True)
        if self.phase is Phase.CLOSING:
            return []  # the session is ending; `SessionEnded` finishes
        abandon: list[Action] = [Abandon()] if self._opening else []
        self.phase = Phase.STOPPED
        return [*abandon, Finished()]

    # -- privacy mute ------------------------------------------------------------------

    def _mute(self, muted: bool) -> list[Action]:
        if muted == self.muted:
            return []
        self.muted = muted
        if muted:
            return self._muted()
        if self.budget_out and self._budget_report is not None:
            self._reported = EngineState.BUDGET_EXHAUSTED
            out: list[Action] = [self._budget_report]
        else:
            out = self._report(EngineState.IDLE, "privacy mute off")
        if self.phase is Phase.MUTED:
            out += self._advance()
        return out  # (a muted session still closing: `SessionEnded` advances)

    def _muted(self) -> list[Action]:
        out: list[Action] = [Prefetch(active=False)]
        out += self._report(EngineState.MUTED, MUTED_DETAIL)
        if self.phase is Phase.STREAMING:
            return out + self._close(CloseReason.MUTE, drain=False)
        if self.phase is Phase.CLOSING:
            return out  # ending already; the engine sends nothing more of what it holds
        if self._opening:
            out.append(Abandon())
        if self.phase is not Phase.NEW:
            self.phase = Phase.MUTED
        return out

    def _report(
        self,
        state: EngineState,
        detail: str = "",
        *,
        error_class: ErrorClass | None = None,
        session_id: str | None = None,
        retry_in: float | None = None,
    ) -> list[Action]:
        """A state for the status, unless a stop or a used-up budget is what it says."""
        if self.stopping:
            return []
        if self.muted and state is not EngineState.MUTED:
            return []
        if self.budget_out and state not in (EngineState.BUDGET_EXHAUSTED, EngineState.MUTED):
            return []
        self._reported = state
        return [Report(state, detail, error_class, session_id, retry_in)]


__all__ = [
    "CHECK_SECONDS",
    "Abandon",
    "Action",
    "AudioChanged",
    "Began",
    "BudgetChanged",
    "CheckDue",
    "Close",
    "CloseRequested",
    "Connect",
    "ControllerSettings",
    "Counters",
    "Event",
    "FetchToken",
    "Finished",
    "MuteChanged",
    "OpenFailed",
    "Phase",
    "Prefetch",
    "Report",
    "Retrying",
    "ScheduleCheck",
    "SessionController",
    "SessionEnded",
    "Start",
    "Stop",
    "TokenReady",
    "TurnActivity",
    "Wait",
    "WaitOver",
    "WantChanged",
]
