"""OpenAI Realtime transcription (GA) as a `StreamingProvider` (no I/O).

The way in: `wss://api.openai.com/v1/realtime?intent=transcription` with the credential (an
API key or an `ek_` client secret) as `Authorization: Bearer`; the session is configured by
the `session.update` sent right after the upgrade (`opening_messages`) and counts as begun
at the server's `session.updated`. Audio goes as `input_audio_buffer.append` text frames
(base64 PCM16 at 24 kHz).

Turns are conversation items, released in commit order (`items.ItemLedger`). With server
turn detection the server commits at each pause; without it (`turn_detection = None`, the
realtime-only models) the engine tells the stream where local speech starts and ends
(`local_speech`) and sends the commit it returns, right after that audio.

Ending: OpenAI has no Terminate and no Termination. `terminate_message()` is empty (nothing
to send); the engine first calls `local_speech(False, ...)` (so speech not yet committed is
committed), then waits (bounded) until `turn_open` is False (every committed item completed
or failed) and closes the connection itself. OpenAI bills audio, not session time, so there
is no billed-seconds figure to report.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgecap.providers.assemblyai.url import redact_url
from edgecap.providers.base import (
    ConnectRequest,
    MessageSkipped,
    ProviderEvent,
    ProviderStream,
    ServerFailed,
    ServerWarned,
    SessionOpened,
    StreamingProvider,
    TurnUpdate,
)
from edgecap.providers.failures import Classified
from edgecap.providers.openai import errors
from edgecap.providers.openai.items import Item, ItemLedger
from edgecap.providers.openai.messages import (
    BetaEvent,
    Committed,
    Completed,
    Delta,
    ErrorInfo,
    Failed,
    ServerErrorEvent,
    ServerEvent,
    SessionInfo,
    SpeechStarted,
    SpeechStopped,
    parse_server_event,
)
from edgecap.providers.openai.params import (
    LiveValue,
    OpenAIParams,
    session_config,
    session_update,
    updated,
)
from edgecap.providers.openai.resample import WIRE_RATE, Upsampler
from edgecap.providers.turn import AUDIO_SLACK_MS, ProtocolError, Turn

COMMIT = json.dumps({"type": "input_audio_buffer.commit"})
MIN_COMMIT_MS = 100
"""The API rejects a commit of less audio (`input_audio_buffer_commit_empty`)."""
MAX_MESSAGE_BYTES = 4 * 2**20
"""A `completed` with log-probabilities of a long item can exceed the 1 MiB default."""
_APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":"'
_APPEND_TAIL = b'"}'


@dataclass(frozen=True, slots=True)
class LocalCommit:
    """A commit edgecap sent (manual turn detection): the audio it covers."""

    event_id: str
    start_ms: int
    """Where local speech began (the item's audio may start earlier: the buffer since the
    previous commit)."""
    end_ms: int


def _partial(item: Item) -> Turn:
    return Turn(
        turn_order=item.turn_order,
        end_of_turn=False,
        turn_is_formatted=False,
        transcript=item.text,
        end_of_turn_confidence=0.0,
        words=(),
        audio_start_ms=item.start_ms,
        audio_end_ms=item.end_ms,
        truncated=item.text_cut,
    )


def _final(item: Item) -> Turn:
    start, end = item.start_ms, item.end_ms
    if start is not None and end is not None:
        start = min(start, end)
    return Turn(
        turn_order=item.turn_order,
        end_of_turn=True,
        turn_is_formatted=True,
        transcript=item.final_text,
        end_of_turn_confidence=1.0 if item.confidence is None else item.confidence,
        words=(),
        audio_start_ms=start,
        audio_end_ms=end,
        truncated=item.truncated,
        repairs=item.repairs,
    )


def _span(item: Item | None) -> str:
    if item is None or item.end_ms is None:
        return ""
    return f" (audio {item.start_ms if item.start_ms is not None else '?'}-{item.end_ms} ms)"


def append_event(pcm24: bytes) -> str:
    """`input_audio_buffer.append` with 24 kHz PCM in base64 (a text frame)."""
    return (_APPEND_HEAD + base64.b64encode(pcm24) + _APPEND_TAIL).decode("ascii")


class OpenAIStream:
    """One session's events as provider-neutral ones: `session.updated` begins it, deltas
    are partials, completions are finals in commit order (a failed item is a warning and an
    empty final: its audio counts as processed), error events fail or warn by class."""

    def __init__(self, manual_commit: bool, input_rate: int = 24000) -> None:
        self._manual = manual_commit
        self._upsample = Upsampler(input_rate) if input_rate != WIRE_RATE else None
        self._items = ItemLedger()
        self._created_id: str | None = None
        self._opened = False
        self._commits: deque[LocalCommit] = deque()
        self._speech_from: int | None = None
        self._committed_ms = 0
        self._commit_count = 0

    @property
    def turn_open(self) -> bool:
        """Speech the server is working on: an item started, committed or completed and
        not yet released; in manual mode also commits not yet answered. Local speech not yet
        committed does not count: the voice gate takes an open turn for speech, so it would
        never hear the end of the speech it is to commit."""
        return self._items.open or bool(self._commits)

    def unfinished(self) -> Turn | None:
        item = self._items.unfinished()
        return None if item is None else _partial(item)

    def encode_audio(self, pcm: bytes) -> str:
        """One audio message: resampled to 24 kHz when the capture rate differs."""
        return append_event(pcm if self._upsample is None else self._upsample(pcm))

    def local_speech(self, speaking: bool, *, audio_ms: int) -> str | None:
        """The local gate's verdict changed at `audio_ms` of this session's audio (speech
        began, or ended after its hang-over). With manual turn detection the end returns the
        commit to send right after the audio up to `audio_ms` (None when there was no
        speech since the last commit or under 100 ms of audio); otherwise None."""
        if not self._manual:
            return None
        audio_ms = max(audio_ms, self._committed_ms)
        if speaking:
            if self._speech_from is None:
                self._speech_from = audio_ms
            return None
        started, self._speech_from = self._speech_from, None
        if started is None or audio_ms - self._committed_ms < MIN_COMMIT_MS:
            return None
        self._commit_count += 1
        commit = LocalCommit(f"edgecap_commit_{self._commit_count}", started, audio_ms)
        self._commits.append(commit)
        self._committed_ms = audio_ms
        return json.dumps({"type": "input_audio_buffer.commit", "event_id": commit.event_id})

    def end_turn(self, *, audio_ms: int) -> str | None:
        """Manual turn detection: commit speech not committed yet (the speech edge usually
        has); with server turn detection the server ends its turns itself."""
        return self.local_speech(False, audio_ms=audio_ms) if self._manual else None

    def receive(self, raw: str | bytes, *, sent_ms: int) -> list[ProviderEvent]:
        try:
            events = self._handle(parse_server_event(raw), sent_ms)
        except ProtocolError as exc:
            return [MessageSkipped(exc)]
        return events + self._finals(self._items.expire(sent_ms))

    # -- one event --------------------------------------------------------------------

    def _handle(self, event: ServerEvent, sent_ms: int) -> list[ProviderEvent]:
        if isinstance(event, Delta):
            item = self._items.delta(event.item_id, event.delta)
            return [] if item is None or not event.delta else [TurnUpdate(_partial(item), False)]
        if isinstance(event, Completed):
            released = self._items.complete(
                event.item_id,
                event.transcript,
                confidence=event.confidence,
                truncated=event.truncated,
                repairs=event.repairs,
            )
            return self._finals(released)
        if isinstance(event, SpeechStarted | SpeechStopped | Committed):
            return self._buffer_event(event, sent_ms)
        if isinstance(event, Failed):
            return self._failed(event)
        if isinstance(event, ServerErrorEvent):
            return [self._error(event.error)]
        if isinstance(event, SessionInfo):
            return self._session(event)
        if isinstance(event, BetaEvent):
            return [self._config_failure("beta_protocol", f"the server sent {event.type}")]
        return []  # other types mean nothing to a transcription session

    def _buffer_event(
        self, event: SpeechStarted | SpeechStopped | Committed, sent_ms: int
    ) -> list[ProviderEvent]:
        if isinstance(event, SpeechStarted | SpeechStopped):
            ms = event.audio_start_ms if isinstance(event, SpeechStarted) else event.audio_end_ms
            if ms > sent_ms + AUDIO_SLACK_MS:
                raise ProtocolError(
                    f"speech at {ms} ms for item {event.item_id}, but only {sent_ms} ms of "
                    "audio were sent in this session"
                )
            item = self._items.see(event.item_id)
            if item is None:
                return []
            if isinstance(event, SpeechStarted):
                item.start_ms = ms if item.start_ms is None else item.start_ms
            elif item.start_ms is not None and ms < item.start_ms:
                raise ProtocolError(
                    f"speech of item {event.item_id} stopped at {ms} ms, before it started "
                    f"({item.start_ms} ms)"
                )
            else:
                item.end_ms = ms
            return []
        item = self._items.see(event.item_id)
        if self._manual and self._commits:
            commit = self._commits.popleft()
            if item is not None:
                item.start_ms = commit.start_ms if item.start_ms is None else item.start_ms
                item.end_ms = commit.end_ms if item.end_ms is None else item.end_ms
        return self._finals(self._items.commit(event.item_id, event.previous_item_id))

    def _failed(self, event: Failed) -> list[ProviderEvent]:
        e = event.error
        why = errors.classify_openai_error(e.kind, e.code, e.message, e.param)
        item = self._items.see(event.item_id)
        warning = ServerWarned(
            None, f"transcription of item {event.item_id}{_span(item)} failed: {why.line()}"
        )
        return [warning, *self._finals(self._items.complete(event.item_id, "", failed=True))]

    def _error(self, e: ErrorInfo) -> ServerFailed | ServerWarned:
        if e.event_id is not None:  # a commit of ours that failed covers no item
            self._commits = deque(c for c in self._commits if c.event_id != e.event_id)
        why = errors.classify_openai_error(e.kind, e.code, e.message, e.param)
        if why.error_class in errors.ENDS_SESSION:
            return ServerFailed(None, errors.error_text(e.kind, e.code, e.message, e.param))
        return ServerWarned(None, why.line())

    def _session(self, info: SessionInfo) -> list[ProviderEvent]:
        if info.session_type not in (None, "transcription"):
            return [
                self._config_failure("conversation_session", f"session.type {info.session_type!r}")
            ]
        if info.created:
            self._created_id = info.id
            return []
        if self._opened:
            return []  # the answer to a live update
        session_id = info.id or self._created_id
        if session_id is None:
            raise ProtocolError("session.updated without a session id (and no session.created)")
        self._opened = True
        return [SessionOpened(session_id, info.expires_at, info.model)]

    @staticmethod
    def _config_failure(code: str, message: str) -> ServerFailed:
        return ServerFailed(None, errors.error_text("invalid_request_error", code, message))

    @staticmethod
    def _finals(released: list[Item]) -> list[ProviderEvent]:
        return [TurnUpdate(_final(item), final=True) for item in released]


@dataclass(frozen=True, slots=True)
class OpenAIRealtimeProvider:
    params: OpenAIParams = field(default_factory=OpenAIParams)
    name: str = "openai"

    @property
    def model(self) -> str:
        return self.params.model

    @property
    def sample_rate(self) -> int:
        """The rate of the PCM handed to the session (the capture rate); the stream
        resamples it to the 24 kHz on the wire."""
        return self.params.input_rate

    @property
    def max_message_bytes(self) -> int:
        return MAX_MESSAGE_BYTES

    def connect_request(self, credential: str) -> ConnectRequest:
        """The credential (API key or `ek_` secret) as a Bearer header, never in the URL."""
        if not credential or any(ch in credential for ch in "\r\n"):
            raise ValueError("the OpenAI credential is empty or not one line")
        url = self.params.url
        return ConnectRequest(
            url, redact_url(url), headers=(("Authorization", f"Bearer {credential}"),)
        )

    def opening_messages(self) -> list[str]:
        return [session_update(self.params)]

    def open_stream(self) -> OpenAIStream:
        return OpenAIStream(self.params.manual_commit, self.params.input_rate)

    def commit_message(self) -> str:
        """`input_audio_buffer.commit` (no event id): what is buffered becomes an item. The
        engine sends the stream's `local_speech` commits instead, which keep the spans."""
        return COMMIT

    def terminate_message(self) -> str:
        """Empty: OpenAI has no Terminate (see the module's doc for how a session ends)."""
        return ""

    def update_message(self, **fields: LiveValue) -> str:
        """A `session.update` with live `fields` applied (`params.LIVE_FIELDS`); the whole
        session configuration is sent, so nothing depends on how the server merges it."""
        return json.dumps(
            {"type": "session.update", "session": session_config(updated(self.params, fields))},
            ensure_ascii=False,
            allow_nan=False,
        )

    def force_endpoint_message(self) -> str:
        return COMMIT

    def keepalive_message(self) -> str:
        """Empty: nothing to send (the WebSocket pings keep the connection)."""
        return ""

    def classify_upgrade(self, status: int) -> Classified:
        return errors.classify_upgrade(status)

    def classify_close(self, code: int | None, reason: str, *, after_terminate: bool) -> Classified:
        return errors.classify_close(code, reason, after_terminate=after_terminate)


if TYPE_CHECKING:  # mypy checks that both classes have the whole interface

    def _provider(provider: OpenAIRealtimeProvider) -> StreamingProvider:
        return provider

    def _stream(stream: OpenAIStream) -> ProviderStream:
        return stream


__all__ = ["COMMIT", "MIN_COMMIT_MS", "LocalCommit", "OpenAIRealtimeProvider", "OpenAIStream"]
