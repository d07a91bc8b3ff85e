"""Settings and outcomes of one streaming session (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgecap.engine.states import CloseReason, EndedBy
from edgecap.providers.assemblyai.url import StreamParams
from edgecap.providers.base import SessionTerminated, StreamingProvider
from edgecap.providers.failures import Classified


@dataclass(frozen=True, slots=True)
class SessionSettings:
    url: str
    params: StreamParams
    device_id: str
    connect_timeout: float = 10.0
    begin_timeout: float = 10.0
    terminate_timeout: float = 5.0
    max_session_seconds: float = 3600.0
    catchup_rate: float = 1.2
    rotation_window_seconds: float | None = None
    """How long before the cap a quiet point may end the session (None: derived)."""
    idle_history_ms: int = 1000
    """Sent audio kept for replay while no turn is open (speech not yet announced)."""
    pacer_burst_seconds: float = 0.1
    preroll_burst_seconds: float = 1.0
    """`streaming.preroll_burst_ms`: the first message of a session opened by a voice onset
    carries up to this much of the backlog (the pre-roll and what was captured while
    connecting; 1000 ms is the largest audio message AssemblyAI takes). The session is live
    after one message instead of catching up at `catchup_rate` for seconds, so the server
    hears the end of speech, and ends the turn, ~1 s sooner. AssemblyAI does not document
    how much look-ahead its real-time check allows (a third party measured ~310 s); the
    simulator's default model is 1.25x + 2 s. A session opened after a drop replays at
    `catchup_rate` from its first message."""
    provider: StreamingProvider | None = None
    """The provider's protocol (the way in, control messages); None: AssemblyAI v3 with a
    token in the query."""


class SessionFailed(Exception):
    """The session could not be opened (stage: handshake, begin) or failed (stream)."""

    def __init__(self, classified: Classified, stage: str) -> None:
        super().__init__(classified.line())
        self.classified = classified
        self.stage = stage


@dataclass
class SessionResult:
    session_id: str
    ended_by: EndedBy
    classified: Classified | None
    termination: SessionTerminated | None
    began_at: float
    ended_at: float
    audio_sent_ms: int
    turns: int
    unfinished_text: str = ""
    close_reason: CloseReason | None = None
    """Why edgecap ended it (stop, idle, budget, audio, or a rotation reason), if it did."""
    replay_ms: int = 0
    """Audio put back into the buffer for the next session (0 after a clean end)."""
    errors: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.ended_at - self.began_at

    @property
    def server_billed_seconds(self) -> float | None:
        """What the server said it bills (`Termination`), if it said."""
        t = self.termination
        return None if t is None or t.billed_seconds is None else float(t.billed_seconds)

    @property
    def clean(self) -> bool:
        """Ended by our Terminate and confirmed by the server's Termination."""
        return self.ended_by is not EndedBy.SERVER and self.termination is not None
