"""What the engine needs of a speech provider's protocol (no I/O).

A provider is a pure protocol object plus the engine's WebSocket transport
(`engine.session`). The object says how to connect (URL, headers, subprotocols for the way
in that is configured), how an audio message is encoded, what the control messages look
like and how to read a refused upgrade or a close. Per session it opens a `ProviderStream`
that turns each server message into provider-neutral events (the session began, a turn
grew or became final by the provider's own rule, the session was terminated and billed,
the server failed or warned, a message was unusable), so the engine never reads a
provider's wire format. AssemblyAI v3 (`providers.assemblyai.protocol`) is the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from edgecap.providers.failures import Classified
from edgecap.providers.turn import ProtocolError, SpeakerRevision, Turn


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    url: str = field(repr=False)
    """May carry a secret (a single-use token in the query)."""
    shown: str
    """The URL for logs and errors: secrets replaced."""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    subprotocols: tuple[str, ...] = field(default=(), repr=False)


# -- what a server message means (provider-neutral events) ------------------------------


@dataclass(frozen=True, slots=True)
class SessionOpened:
    """The server started the session (AssemblyAI: `Begin`)."""

    id: str
    expires_at: float | None = None
    """Unix time at which the server ends the session, if it said."""
    model: str | None = None
    """The model the server says it runs, if it said."""


@dataclass(frozen=True, slots=True)
class TurnUpdate:
    """A turn grew (`final` False: a partial) or was finalized by the provider's rule; a
    turn is final once. `turn.repairs` lists what parsing had to change."""

    turn: Turn
    final: bool


@dataclass(frozen=True, slots=True)
class SessionTerminated:
    """The server confirmed the end (AssemblyAI: `Termination`) with what it bills."""

    billed_seconds: float | None = None
    audio_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class ServerFailed:
    """An error the server reports before it closes (its code and full text)."""

    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class ServerWarned:
    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class TurnsRevised:
    """Speaker labels of earlier turns, revised."""

    revision: SpeakerRevision


@dataclass(frozen=True, slots=True)
class MessageSkipped:
    """A message that could not be used (malformed, out of order, impossible times)."""

    error: ProtocolError


ProviderEvent = (
    SessionOpened
    | TurnUpdate
    | SessionTerminated
    | ServerFailed
    | ServerWarned
    | TurnsRevised
    | MessageSkipped
)


class ProviderStream(Protocol):
    """One session's reading of the server's messages (its turn state)."""

    def receive(self, raw: str | bytes, *, sent_ms: int) -> list[ProviderEvent]:
        """What one server message means; `sent_ms`: audio sent so far (word times beyond
        it are impossible). Unknown message types mean nothing (an empty list)."""
        ...

    @property
    def turn_open(self) -> bool:
        """A turn has started and is not final yet."""
        ...

    def unfinished(self) -> Turn | None:
        """At the end: the turn that never became final, if any."""
        ...

    def encode_audio(self, pcm: bytes) -> bytes | str:
        """One audio message (PCM16 mono at the provider's `sample_rate`): a binary or a
        text frame. Per session, as it may keep state (a resampler)."""
        ...

    def local_speech(self, speaking: bool, *, audio_ms: int) -> str | None:
        """The local voice gate's verdict changed at `audio_ms` of this session's audio:
        speech began (`speaking`) or ended (after the gate's hang-over; also call it with
        False before ending a session deliberately). Returns a message to send right after
        the audio up to `audio_ms`, in order with it, or None. A provider whose server finds
        the turns itself returns None (AssemblyAI); OpenAI without server turn detection
        returns its `input_audio_buffer.commit` at the end of speech."""
        ...

    def end_turn(self, *, audio_ms: int) -> str | None:
        """The local side decided the talk is over (the session is about to end): a message
        that makes the server finish the turn it has open now, sent right after the audio
        up to `audio_ms`, or None (no turn open, or the provider ends it otherwise)."""
        ...


class StreamingProvider(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str:
        """The model asked for (published with each turn, compared with the server's)."""
        ...

    @property
    def sample_rate(self) -> int: ...

    @property
    def max_message_bytes(self) -> int:
        """The largest server message accepted (the WebSocket's limit)."""
        ...

    def connect_request(self, credential: str) -> ConnectRequest:
        """How to open a session with `credential` (a token, or the configured key)."""
        ...

    def opening_messages(self) -> list[str]:
        """What to send right after the upgrade, before the session counts as begun and
        before any audio (AssemblyAI: nothing; OpenAI: its `session.update`)."""
        ...

    def open_stream(self) -> ProviderStream:
        """The reader of one new session's messages."""
        ...

    def terminate_message(self) -> str:
        """The message that ends a session (AssemblyAI: Terminate, answered by Termination
        and the server's close). Empty: the provider has no such handshake (OpenAI): after
        `local_speech(False, ...)` the engine waits, bounded, until the stream's `turn_open`
        is False (every committed turn final) and closes the connection itself; that end is
        clean (nothing to replay)."""
        ...

    def update_message(self, **fields: float | int | bool | list[str] | str) -> str:
        """A live configuration change (no reconnect)."""
        ...

    def force_endpoint_message(self) -> str: ...

    def keepalive_message(self) -> str:
        """Empty: nothing to send (OpenAI: the WebSocket pings keep the connection)."""
        ...

    def classify_upgrade(self, status: int) -> Classified:
        """The upgrade was refused with this HTTP status."""
        ...

    def classify_close(self, code: int | None, reason: str, *, after_terminate: bool) -> Classified:
        """The connection was closed (the Error frame's code and text when there was one)."""
        ...
