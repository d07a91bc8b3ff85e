"""What the OpenAI Realtime simulator saw and did, kept for tests (plain dataclasses
mutated on the simulator's event loop; await changes with the simulator's wait helpers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edgecap.sim.openai.buffer import CommitBy
from edgecap.sim.openai.config import TranscriptionConfig
from edgecap.sim.openai.faults import RealtimeFault
from edgecap.sim.openai.protocol import Message
from edgecap.sim.openai.secrets import AuthKind

SessionKind = Literal["transcription", "conversation", "refused"]
ItemStatus = Literal["committed", "completed", "failed"]
HandshakeOutcome = Literal["accepted", "unauthorized", "fault", "hang"]


@dataclass
class RealtimeHandshake:
    """One upgrade request on ``/v1/realtime``, answered or not (``status`` 101 when
    accepted, ``None`` while a hang holds it)."""

    at: float
    query: dict[str, str]
    auth: AuthKind = "none"
    secret: str | None = None
    status: int | None = None
    outcome: HandshakeOutcome = "accepted"


@dataclass
class ItemRecord:
    """One committed item: its audio span (ms of the session's audio), text and fate."""

    item_id: str
    previous_item_id: str | None
    audio_start_ms: int
    audio_end_ms: int
    by: CommitBy
    texts: tuple[str, ...] = ()
    status: ItemStatus = "committed"
    transcript: str | None = None  # set when completed
    deltas: list[str] = field(default_factory=list)  # every delta sent for the item
    session: int = 0


@dataclass
class CommitRecord:
    """One client ``input_audio_buffer.commit``: the item it made, or the error code."""

    buffered_ms: float
    item_id: str | None = None
    error_code: str | None = None


@dataclass
class SecretRequestRecord:
    """One ``POST …/realtime/client_secrets`` (direct or on the KeyPool path)."""

    at: float
    path: str
    keypool: bool
    authorization_present: bool
    credential_ok: bool
    mode: str
    status: int = 0
    body: object = None  # the parsed JSON body (None if absent or not JSON)
    value: str | None = None  # the ek_ secret minted
    expires_at: int | None = None


@dataclass
class RealtimeSessionRecord:
    """One ``/v1/realtime`` connection that passed the upgrade.

    ``kind``: ``transcription``; ``conversation`` (a realtime model in the URL's
    ``model=``: transcription updates are refused); ``refused`` (an ``error`` at connect,
    then a close: a transcription model in ``model=``, the beta header, no intent nor
    model). ``config`` is the effective configuration (``None`` for conversation
    sessions); ``ready`` once it has a transcription model (an accepted ``session.update``,
    or a secret minted for a transcription session).
    """

    index: int
    query: dict[str, str]
    headers: dict[str, str]
    connected_at: float
    auth: AuthKind
    secret: str | None = None
    fault: RealtimeFault | None = None
    kind: SessionKind = "transcription"
    url_model: str | None = None
    session_id: str | None = None
    created: Message | None = None  # the session.created event
    created_at: float | None = None
    expires_at: int | None = None
    config: TranscriptionConfig | None = None
    session_updates: list[Message] = field(default_factory=list)  # as received
    updates_accepted: int = 0
    audio_ms: float = 0.0  # appended once ready (what the buffer heard)
    audio_ms_before_ready: float = 0.0  # appended before session.updated: a client error
    appends: int = 0
    commits: list[CommitRecord] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    received: list[Message | str] = field(default_factory=list)  # appends' audio elided
    sent: list[Message] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    closed_by: str | None = None  # "server", "client" or "network"
    closed_at: float | None = None
    stalled: bool = False

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def ready(self) -> bool:
        return self.config is not None and self.config.ready

    @property
    def updated(self) -> list[Message]:
        """``session.updated`` events sent."""
        return self.events("session.updated")

    @property
    def errors(self) -> list[Message]:
        """``error`` events sent (their ``error`` objects)."""
        return [m["error"] for m in self.events("error")]

    @property
    def completed(self) -> list[ItemRecord]:
        return [item for item in self.items if item.status == "completed"]

    @property
    def transcripts(self) -> list[str]:
        return [item.transcript or "" for item in self.completed]

    def events(self, kind: str) -> list[Message]:
        """Events of type ``kind`` sent, in order."""
        return [m for m in self.sent if m.get("type") == kind]

    def item(self, item_id: str) -> ItemRecord | None:
        return next((item for item in self.items if item.item_id == item_id), None)
