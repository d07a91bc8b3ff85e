"""AssemblyAI v3 Universal-Streaming as a `StreamingProvider` (no I/O).

Four ways in (`AuthForm`), each a different upgrade request:

- `token_query`: a single-use temporary token in `?token=` (token service, or minted with
  an API key on the device);
- `proxy_header`: through a KeyPool-compatible proxy (`.../v1/assemblyai/v3/ws`), the team
  credential as `Authorization: Bearer <credential>`;
- `proxy_subprotocol`: the same proxy, the credential as the WebSocket subprotocol
  `keypool-token.<credential>` (where headers cannot be set);
- `api_key_header`: the API key itself as `Authorization: <key>` (raw, no Bearer), as a
  server-side client does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgecap.providers.assemblyai.errors import classify_close, classify_http_status
from edgecap.providers.assemblyai.messages import (
    FORCE_ENDPOINT,
    KEEP_ALIVE,
    TERMINATE,
    Begin,
    ServerError,
    ServerWarning,
    SpeakerRevision,
    Termination,
    Turn,
    parse_server_message,
    update_configuration,
)
from edgecap.providers.assemblyai.turns import TurnAssembler
from edgecap.providers.assemblyai.url import StreamParams, redact_url, streaming_url
from edgecap.providers.base import (
    ConnectRequest,
    MessageSkipped,
    ProviderEvent,
    ServerFailed,
    ServerWarned,
    SessionOpened,
    SessionTerminated,
    TurnsRevised,
    TurnUpdate,
)
from edgecap.providers.failures import Classified
from edgecap.providers.turn import ProtocolError, check_turn_audio

AuthForm = Literal["token_query", "proxy_header", "proxy_subprotocol", "api_key_header"]
PROXY_SUBPROTOCOL_PREFIX = "keypool-token."
REVISION_MAX_BYTES = 8 * 2**20
"""With speaker labels: a SpeakerRevision at the end of a long session can exceed the
WebSocket's 1 MiB default."""


class AssemblyAIStream:
    """One session's v3 messages as provider-neutral events. A turn is final when
    `end_of_turn and (not format_turns or turn_is_formatted)`, once per `turn_order`
    (`TurnAssembler`); a Turn with impossible word times or out of order is skipped."""

    def __init__(self, format_turns: bool) -> None:
        self._assembler = TurnAssembler(format_turns)

    @property
    def turn_open(self) -> bool:
        return self._assembler.open_turn is not None

    def unfinished(self) -> Turn | None:
        return self._assembler.flush()

    def local_speech(self, speaking: bool, *, audio_ms: int) -> str | None:
        return None  # the server finds the end of each turn itself

    def end_turn(self, *, audio_ms: int) -> str | None:
        return FORCE_ENDPOINT if self.turn_open else None

    def encode_audio(self, pcm: bytes) -> bytes:
        return pcm  # v3 takes raw PCM16 in binary frames (no JSON, no base64)

    def receive(self, raw: str | bytes, *, sent_ms: int) -> list[ProviderEvent]:
        try:
            message = parse_server_message(raw)
            if isinstance(message, Turn):
                check_turn_audio(message, sent_ms)
                self._assembler.check_order(message)
        except ProtocolError as exc:
            return [MessageSkipped(exc)]
        if isinstance(message, Turn):
            final = self._assembler.feed(message)
            if final is not None:
                return [TurnUpdate(final, final=True)]
            if self._assembler.open_turn is message:
                return [TurnUpdate(message, final=False)]
            return []  # a repeat of a turn already final
        if isinstance(message, Begin):
            return [SessionOpened(message.id, message.expires_at, message.model)]
        if isinstance(message, Termination):
            return [
                SessionTerminated(message.session_duration_seconds, message.audio_duration_seconds)
            ]
        if isinstance(message, ServerError):
            return [ServerFailed(message.code, message.message)]
        if isinstance(message, ServerWarning):
            return [ServerWarned(message.code, message.message)]
        if isinstance(message, SpeakerRevision):
            return [TurnsRevised(message)]
        return []  # unknown types are ignored, as the protocol requires


@dataclass(frozen=True, slots=True)
class AssemblyAIProvider:
    url: str
    params: StreamParams
    auth: AuthForm = "token_query"
    name: str = "assemblyai"

    @property
    def model(self) -> str:
        return self.params.speech_model

    @property
    def sample_rate(self) -> int:
        return self.params.sample_rate

    @property
    def max_message_bytes(self) -> int:
        return REVISION_MAX_BYTES if self.params.speaker_labels else 2**20

    def opening_messages(self) -> list[str]:
        return []  # the query string configures the session; Begin comes by itself

    def open_stream(self) -> AssemblyAIStream:
        return AssemblyAIStream(bool(self.params.format_turns))

    @property
    def via_proxy(self) -> bool:
        return self.auth in ("proxy_header", "proxy_subprotocol")

    def connect_request(self, credential: str) -> ConnectRequest:
        token = credential if self.auth == "token_query" else None
        url = streaming_url(self.url, self.params, token)
        shown = redact_url(url)
        if self.auth == "proxy_header":
            return ConnectRequest(url, shown, headers=(("Authorization", f"Bearer {credential}"),))
        if self.auth == "proxy_subprotocol":
            return ConnectRequest(url, shown, subprotocols=(PROXY_SUBPROTOCOL_PREFIX + credential,))
        if self.auth == "api_key_header":
            return ConnectRequest(url, shown, headers=(("Authorization", credential),))
        return ConnectRequest(url, shown)

    def terminate_message(self) -> str:
        return TERMINATE

    def update_message(self, **fields: float | int | bool | list[str] | str) -> str:
        return update_configuration(**fields)

    def force_endpoint_message(self) -> str:
        return FORCE_ENDPOINT

    def keepalive_message(self) -> str:
        return KEEP_ALIVE

    def classify_upgrade(self, status: int) -> Classified:
        where = "KeyPool proxy" if self.via_proxy else "streaming server"
        return classify_http_status(status, where=where)

    def classify_close(self, code: int | None, reason: str, *, after_terminate: bool) -> Classified:
        return classify_close(code, reason, after_terminate=after_terminate)
