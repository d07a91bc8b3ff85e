"""What the simulators saw and did, kept for tests, plus awaitable change waits.

Records are plain dataclasses mutated on the simulator's event loop; a test
running on the same loop reads them directly and awaits changes with
:meth:`Notifier.wait_until` instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from edgecap.sim.credentials import AuthKind
from edgecap.sim.faults import FaultPlan
from edgecap.sim.params import SessionParams

Message = dict[str, Any]
HandshakeOutcome = Literal["accepted", "credential", "fault", "hang"]


class Notifier:
    """Wakes waiters whenever a record changes.

    Waits give up after ``timeout`` seconds (a safety net so a broken test
    fails instead of hanging); wrap a wait in ``asyncio.timeout`` for a
    shorter limit.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Signal a change (callable from synchronous code on the loop)."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], what: str = "condition") -> None:
        """Return once ``predicate()`` is true; ``TimeoutError`` after ``self.timeout`` s."""
        timeout = self.timeout
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._event.wait()
        except TimeoutError:
            raise TimeoutError(f"simulator: {what} not reached within {timeout} s") from None


@dataclass
class HandshakeRecord:
    """One WebSocket upgrade request on ``/v3/ws`` or the proxy path, answered or not.

    ``status`` is 101 for an accepted upgrade, else the HTTP status sent (``None`` while a
    ``handshake_hang`` fault holds it). ``outcome``: ``accepted``, ``credential`` (401 on the
    proxy path: no valid team credential), ``fault`` (a scheduled handshake fault) or
    ``hang``. ``auth`` is how a proxy upgrade proved the credential (``None`` on ``/v3/ws``,
    where the token or key is checked after the upgrade).
    """

    at: float
    path: str
    query: dict[str, str]
    offered_subprotocols: list[str]
    proxy: bool
    auth: AuthKind | None = None
    status: int | None = None
    outcome: HandshakeOutcome = "accepted"


@dataclass
class SessionRecord:
    """One ``/v3/ws`` (or proxy path) connection that passed the HTTP handshake.

    ``auth`` says how it authenticated: ``token``, ``api_key_header``, ``proxy_header`` or
    ``proxy_subprotocol`` (``None`` when it was refused). ``params`` is the effective
    configuration (``UpdateConfiguration`` changes it), ``connect_params`` the one the
    query string asked for; both ``None`` until the parameters were accepted.
    """

    index: int
    query: dict[str, str]
    headers: dict[str, str]
    connected_at: float
    fault: FaultPlan | None = None
    path: str = "/v3/ws"
    offered_subprotocols: list[str] = field(default_factory=list)
    subprotocol: str | None = None  # the one the server selected (echoed)
    auth: AuthKind | None = None
    token: str | None = None
    params: SessionParams | None = None
    connect_params: SessionParams | None = None
    session_id: str | None = None
    begin: Message | None = None
    begin_at: float | None = None
    expires_at: int | None = None
    frame_sizes: list[int] = field(default_factory=list)
    audio_ms: float = 0.0
    text_messages: list[Message | str] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)  # raw frames of an `inject` fault
    terminate_received: bool = False
    session_duration_seconds: int | None = None
    audio_duration_seconds: int | None = None
    error: Message | None = None
    close_code: int | None = None
    close_reason: str | None = None
    closed_by: str | None = None  # "server", "client" or "network"
    closed_at: float | None = None
    stalled: bool = False

    @property
    def closed(self) -> bool:
        """True once the connection is over (any side, any way)."""
        return self.closed_at is not None

    @property
    def frames_received(self) -> int:
        """Number of binary audio messages received."""
        return len(self.frame_sizes)

    @property
    def turns(self) -> list[Message]:
        """Every ``Turn`` message sent, partials included."""
        return [m for m in self.sent if m.get("type") == "Turn"]

    @property
    def final_turns(self) -> list[Message]:
        """Turns with ``end_of_turn: true`` (formatted and unformatted)."""
        return [m for m in self.turns if m["end_of_turn"]]

    @property
    def update_configurations(self) -> list[Message]:
        """``UpdateConfiguration`` messages received, in order, as sent (every field)."""
        return [
            m
            for m in self.text_messages
            if isinstance(m, dict) and m.get("type") == "UpdateConfiguration"
        ]

    @property
    def keyterms(self) -> list[str]:
        """The session's effective keyterms (the query's, as replaced by updates)."""
        return list(self.params.keyterms) if self.params is not None else []

    @property
    def speaker_revisions(self) -> list[Message]:
        """``SpeakerRevision`` messages sent."""
        return [m for m in self.sent if m.get("type") == "SpeakerRevision"]


@dataclass
class TokenRequestRecord:
    """One HTTP request to a token endpoint."""

    at: float
    path: str
    params: dict[str, str]
    authorization_present: bool
    credential_ok: bool
    status: int
    token: str | None = None
    mode: str | None = None
