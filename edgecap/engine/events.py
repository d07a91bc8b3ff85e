"""What the session controller hears (events) and says (actions): plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from edgecap.engine.policy import Decision
from edgecap.engine.states import CloseReason, EndedBy, EngineState
from edgecap.providers.failures import Classified, ErrorClass

# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    now: float


@dataclass(frozen=True, slots=True)
class AudioChanged:
    """Capture delivers audio (`ok`) or not; `reported`: the daemon has reported the loss
    itself (audio_unavailable), so the engine does not say `idle` over it."""

    now: float
    ok: bool
    reported: bool = False


@dataclass(frozen=True, slots=True)
class WantChanged:
    """The gate (voice, budget) wants a session open, or no longer does."""

    now: float
    wanted: bool


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """The gate's verdict on a frame: close the open session (idle or budget)."""

    now: float
    reason: CloseReason


@dataclass(frozen=True, slots=True)
class TokenReady:
    now: float


@dataclass(frozen=True, slots=True)
class Began:
    now: float
    session_id: str
    expires_in: float | None = None
    """`Begin.expires_at` minus the wall time at Begin, if the server said."""
    note: str = ""
    """Something to say in the status while it streams (the server runs another model)."""


@dataclass(frozen=True, slots=True)
class OpenFailed:
    """No token, no connection or no `Begin`."""

    now: float
    classified: Classified


@dataclass(frozen=True, slots=True)
class TurnActivity:
    """A Turn message arrived (`final`: a turn was finalized)."""

    now: float
    final: bool
    turn_open: bool
    token_ready: bool


@dataclass(frozen=True, slots=True)
class CheckDue:
    """A `ScheduleCheck` fired."""

    now: float
    turn_open: bool
    token_ready: bool


@dataclass(frozen=True, slots=True)
class SessionEnded:
    now: float
    ended_by: EndedBy
    classified: Classified | None


@dataclass(frozen=True, slots=True)
class WaitOver:
    now: float


@dataclass(frozen=True, slots=True)
class BudgetChanged:
    now: float
    exhausted: bool
    detail: str
    resets_at: float | None = None
    """Unix time at which the next billing day begins (when `exhausted`)."""


@dataclass(frozen=True, slots=True)
class Stop:
    now: float


@dataclass(frozen=True, slots=True)
class MuteChanged:
    """The privacy mute was switched on (`muted`) or off: while on, no session opens and
    an open one ends at once (nothing buffered is sent)."""

    now: float
    muted: bool


Event = (
    Start
    | AudioChanged
    | WantChanged
    | CloseRequested
    | TokenReady
    | Began
    | OpenFailed
    | TurnActivity
    | CheckDue
    | SessionEnded
    | WaitOver
    | BudgetChanged
    | Stop
    | MuteChanged
)

# -- actions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchToken:
    """Get a token (the spare when there is one); then `TokenReady` or `OpenFailed`."""


@dataclass(frozen=True, slots=True)
class Prefetch:
    """Keep a spare token in the background (`active`), or stop refilling it;
    `discard`: throw the spare away (re-mint after an auth failure)."""

    active: bool
    discard: bool = False


@dataclass(frozen=True, slots=True)
class Connect:
    """Open the session with the token; then `Began` or `OpenFailed`."""


@dataclass(frozen=True, slots=True)
class Abandon:
    """Give up the token request, connection or wait for Begin in progress (stopping)."""


@dataclass(frozen=True, slots=True)
class Close:
    """End the session: Terminate and wait for Termination; `drain`: send what is buffered
    first (a rotation leaves it for the next session). Then `SessionEnded`."""

    reason: CloseReason
    drain: bool


@dataclass(frozen=True, slots=True)
class Wait:
    """Back off for `seconds`; then `WaitOver`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class ScheduleCheck:
    """Send `CheckDue` at monotonic time `at`."""

    at: float


@dataclass(frozen=True, slots=True)
class Report:
    state: EngineState
    detail: str = ""
    error_class: ErrorClass | None = None
    session_id: str | None = None
    retry_in: float | None = None
    resets_at: float | None = None
    """While the budget is used up: when sessions may open again (Unix time)."""


@dataclass(frozen=True, slots=True)
class Retrying:
    """A failure and what the policy decided (for the log and the status' last error)."""

    classified: Classified
    decision: Decision
    attempt: int


@dataclass(frozen=True, slots=True)
class Finished:
    """The engine has stopped: no session is open or opening."""


Action = (
    FetchToken
    | Prefetch
    | Connect
    | Abandon
    | Close
    | Wait
    | ScheduleCheck
    | Report
    | Retrying
    | Finished
)
