"""Parsing of OpenAI Realtime transcription server events (no I/O).

Only the events a transcription session needs are read (`session.created`/`updated`, the
input buffer's `speech_started`/`speech_stopped`/`committed`, the transcription's
`delta`/`completed`/`failed`, and `error`); every other type is `Unknown` and ignored. The
same care as for AssemblyAI (`assemblyai/limits.py`): strict JSON (no NaN or Infinity), a
JSON object with a string `type`, ids of at most `MAX_ID_CHARS`, times finite and within
range, text made valid Unicode and cut to its limit. A message that cannot be used raises
`ProtocolError` with one line; the session skips it and goes on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from edgecap.providers.assemblyai.fields import Repairs
from edgecap.providers.assemblyai.limits import (
    MAX_AUDIO_MS,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    MAX_UNIX_SECONDS,
    line,
    number,
    optional_number,
    show,
    unicode_safe,
)
from edgecap.providers.turn import ProtocolError

MAX_LOGPROBS = 20_000
"""Token log-probabilities read from one `completed` (more are ignored)."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """`session.created` (`created`) or `session.updated`."""

    created: bool
    id: str | None
    session_type: str | None
    """"transcription" for a transcription session ("realtime": a conversation session)."""
    expires_at: int | None
    model: str | None
    """The transcription model the server runs, if it said."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class Committed:
    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class Delta:
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class Completed:
    item_id: str
    transcript: str
    confidence: float | None
    """From the token log-probabilities (their geometric mean), when the server sent them."""
    truncated: bool
    repairs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The `error` object of an `error` event or of a failed transcription."""

    kind: str | None
    """`error.type` ("invalid_request_error", "server_error", ...)."""
    code: str | None
    message: str
    param: str | None = None
    event_id: str | None = None
    """The client event that caused it, when it had an id."""


@dataclass(frozen=True, slots=True)
class Failed:
    item_id: str
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class ServerErrorEvent:
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class BetaEvent:
    """An event of the deprecated beta protocol (`transcription_session.*`)."""

    type: str


@dataclass(frozen=True, slots=True)
class Unknown:
    type: str


ServerEvent = (
    SessionInfo
    | SpeechStarted
    | SpeechStopped
    | Committed
    | Delta
    | Completed
    | Failed
    | ServerErrorEvent
    | BetaEvent
    | Unknown
)

TRANSCRIPTION = "conversation.item.input_audio_transcription."


def _id(data: dict[str, Any], name: str, what: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise ProtocolError(
            f"{what}.{name} should be an id of 1..{MAX_ID_CHARS} characters, got {show(value)}"
        )
    return unicode_safe(value)[0]


def _item(data: dict[str, Any], what: str) -> str:
    item_id = _id(data, "item_id", what)
    assert item_id is not None
    return item_id


def _ms(data: dict[str, Any], name: str, what: str) -> int:
    return int(number(data.get(name), f"{what}.{name}", 0, MAX_AUDIO_MS))


def _text(data: dict[str, Any], name: str, what: str, *, required: bool) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"{what}.{name} should be a string, got {show(value)}")
    return value


def _short(value: object) -> str | None:
    return line(value, MAX_ID_CHARS) if isinstance(value, str) and value else None


def _session(data: dict[str, Any], created: bool) -> SessionInfo:
    what = "session.created" if created else "session.updated"
    session = data.get("session")
    if not isinstance(session, dict):
        raise ProtocolError(f"{what} without a 'session' object")
    expires = optional_number(session.get("expires_at"), 0, MAX_UNIX_SECONDS)
    model = None
    audio = session.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("input"), dict):
        transcription = audio["input"].get("transcription")
        if isinstance(transcription, dict):
            model = _short(transcription.get("model"))
    return SessionInfo(
        created=created,
        id=_id(session, "id", f"{what}.session", required=False),
        session_type=_short(session.get("type")),
        expires_at=None if expires is None else int(expires),
        model=model,
    )


def error_info(raw: object) -> ErrorInfo:
    """An `error` object; what is missing or unusable is left out (never a failure)."""
    data = raw if isinstance(raw, dict) else {}
    message = data.get("message")
    return ErrorInfo(
        kind=_short(data.get("type")),
        code=_short(data.get("code")),
        message=line(message) if isinstance(message, str) else "",
        param=_short(data.get("param")),
        event_id=_short(data.get("event_id")),
    )


def confidence(logprobs: object) -> float | None:
    """The geometric mean of the tokens' probabilities, or None when there are none or one
    is not a finite log-probability (<= 0)."""
    if not isinstance(logprobs, list) or not logprobs:
        return None
    total = 0.0
    count = 0
    for entry in logprobs[:MAX_LOGPROBS]:
        value = entry.get("logprob") if isinstance(entry, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not -1e6 <= value <= 0:  # also NaN
            return None
        total += value
        count += 1
    return min(1.0, max(0.0, math.exp(total / count)))


def _completed(data: dict[str, Any], what: str) -> Completed:
    texts = Repairs()
    transcript = _text(data, "transcript", what, required=True)
    return Completed(
        item_id=_item(data, what),
        transcript=texts.text(transcript, MAX_TEXT_CHARS, f"{what}.transcript"),
        confidence=confidence(data.get("logprobs")),
        truncated=len(transcript) > MAX_TEXT_CHARS,
        repairs=texts.notes(),
    )


def _transcription(data: dict[str, Any], kind: str) -> ServerEvent:
    what = kind.removeprefix("conversation.item.")
    if kind == TRANSCRIPTION + "delta":
        delta = _text(data, "delta", what, required=False)
        return Delta(_item(data, what), unicode_safe(delta[:MAX_TEXT_CHARS])[0])
    if kind == TRANSCRIPTION + "completed":
        return _completed(data, what)
    if kind == TRANSCRIPTION + "failed":
        return Failed(_item(data, what), error_info(data.get("error")))
    return Unknown(line(kind, MAX_ID_CHARS))


def _parse_object(data: dict[str, Any], text: str) -> ServerEvent:
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(f"server event without a string 'type': {text[:80]!r}")
    if kind.startswith(TRANSCRIPTION):
        return _transcription(data, kind)
    if kind in ("session.created", "session.updated"):
        return _session(data, kind == "session.created")
    if kind == "input_audio_buffer.speech_started":
        return SpeechStarted(_item(data, kind), _ms(data, "audio_start_ms", kind))
    if kind == "input_audio_buffer.speech_stopped":
        return SpeechStopped(_item(data, kind), _ms(data, "audio_end_ms", kind))
    if kind == "input_audio_buffer.committed":
        previous = _id(data, "previous_item_id", kind, required=False)
        return Committed(_item(data, kind), previous)
    if kind == "error":
        return ServerErrorEvent(error_info(data.get("error")))
    if kind.startswith("transcription_session."):
        return BetaEvent(line(kind, MAX_ID_CHARS))
    return Unknown(line(kind, MAX_ID_CHARS))


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_server_event(text: str | bytes) -> ServerEvent:
    """Parse one text frame from the server. Anything unusable raises `ProtocolError`."""
    if isinstance(text, bytes):
        raise ProtocolError("binary frame from the server (the Realtime API sends JSON text)")
    try:
        data = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"server sent invalid JSON ({exc}): {text[:80]!r}") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"server event is not a JSON object: {text[:80]!r}")
    try:
        return _parse_object(data, text)
    except ProtocolError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ProtocolError(f"unusable server event ({exc!r:.120}): {text[:80]!r}") from exc


__all__ = [
    "BetaEvent",
    "Committed",
    "Completed",
    "Delta",
    "ErrorInfo",
    "Failed",
    "ServerErrorEvent",
    "ServerEvent",
    "SessionInfo",
    "SpeechStarted",
    "SpeechStopped",
    "Unknown",
    "confidence",
    "error_info",
    "parse_server_event",
]
