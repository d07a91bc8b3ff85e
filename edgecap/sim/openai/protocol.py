"""Wire shapes of OpenAI's GA Realtime transcription API for the simulator (sans-I/O).

Events are plain dicts. Error events carry ``{"type", "code", "message", "param",
"event_id"}`` like the real server's; texts the real server is known to send (from its
docs and from field reports, cited in docs/simulator.md) are reproduced, and where no
text or code is documented the simulator says so in its own words (``code`` is then
``None`` or names the simulator).
"""

from __future__ import annotations

import math
import secrets
from typing import Any, Literal

Message = dict[str, Any]
ErrorType = Literal["invalid_request_error", "server_error"]

REALTIME_PATH = "/v1/realtime"
SECRETS_PATH = "/v1/realtime/client_secrets"
KEYPOOL_BASE_PATH = "/v1/openai"
KEYPOOL_SECRETS_PATH = KEYPOOL_BASE_PATH + SECRETS_PATH

TRANSCRIPTION_MODELS: tuple[str, ...] = (
    "gpt-live-transcribe",
    "gpt-realtime-whisper",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe-diarize",
    "whisper-1",
)
NO_VAD_MODELS = frozenset({"gpt-live-transcribe", "gpt-realtime-whisper"})
"""Realtime-only models without server turn detection: the client commits the buffer.
They also stream deltas while speech arrives (before the commit)."""
DURATION_BILLED_MODELS = frozenset({"gpt-live-transcribe", "gpt-realtime-whisper", "whisper-1"})

PCM_RATE = 24000
MIN_COMMIT_MS = 100.0
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_SERVER_ERROR = 1011
_MAX_REASON_BYTES = 123

SERVER_ERROR_TEXT = "The server had an error while processing your request. Sorry about that!"
BETA_REFUSED_TEXT = (
    "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
)
TRANSCRIPTION_UPDATE_REFUSED_TEXT = (
    "Passing a transcription session update event to a realtime session is not allowed."
)
REALTIME_UPDATE_REFUSED_TEXT = (
    "Passing a realtime session update event to a transcription session is not allowed."
)
TURN_DETECTION_REFUSED_TEXT = "Turn detection is not supported for this transcription model."
MISSING_MODEL_TEXT = (
    "You must provide a model parameter (or intent=transcription for a transcription session)."
)
CLIENT_EVENT_TYPES = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)


class RealtimeError(Exception):
    """An ``error`` event's content (also the JSON ``error`` object of an HTTP error)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        kind: ErrorType = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.kind: ErrorType = kind

    def body(self, event_id: str | None = None) -> Message:
        """The ``error`` object: type, code, message, param, event_id."""
        return {
            "type": self.kind,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": event_id,
        }


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (``event_…``, ``item_…``, ``sess_…``)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def error_event(error: RealtimeError, client_event_id: str | None = None) -> Message:
    """The ``error`` server event; ``client_event_id`` names the event that caused it."""
    return {"type": "error", "event_id": new_id("event"), "error": error.body(client_event_id)}


def close_reason(text: str) -> str:
    """``text`` cut to the 123 bytes a close frame can carry."""
    data = text.encode()
    if len(data) <= _MAX_REASON_BYTES:
        return text
    return data[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


# -- errors the server is known to send ------------------------------------------


def empty_commit(buffered_ms: float) -> RealtimeError:
    """``input_audio_buffer.commit`` with less than 100 ms buffered."""
    return RealtimeError(
        "Error committing input audio buffer: buffer too small. Expected at least 100ms of"
        f" audio, but buffer only has {buffered_ms:.2f}ms of audio.",
        code="input_audio_buffer_commit_empty",
    )


def transcription_model_as_session_model(model: str) -> RealtimeError:
    """A transcription model in the URL's ``model=`` (a conversation session's model)."""
    return RealtimeError(
        f"Model {model} is a transcription model and cannot be used as the realtime session"
        " model. Use a realtime model for the session model. Pass this transcription model as"
        " audio.input.transcription.model instead.",
        code="invalid_model",
        param="model",
    )


def session_expired(max_seconds: float) -> RealtimeError:
    """The session reached its maximum duration (then a close 1001 with the same text)."""
    if max_seconds >= 60 and max_seconds % 60 == 0:
        span = f"{int(max_seconds // 60)} minutes"
    else:
        span = f"{max_seconds:g} seconds"  # the simulator's short test caps
    return RealtimeError(
        f"Your session hit the maximum duration of {span}.", code="session_expired"
    )


def invalid_value(value: object, supported: tuple[str, ...], param: str) -> RealtimeError:
    choices = ", ".join(f"'{s}'" for s in supported)
    return RealtimeError(
        f"Invalid value: '{value}'. Supported values are: {choices}.",
        code="invalid_value",
        param=param,
    )


def below_min(param: str, minimum: float, given: float, *, integer: bool) -> RealtimeError:
    kind = "integer" if integer else "decimal"
    return RealtimeError(
        f"Invalid '{param}': {kind} below minimum value. Expected a value >= {minimum:g},"
        f" but got {given:g} instead.",
        code=f"{kind}_below_min_value",
        param=param,
    )


def above_max(param: str, maximum: float, given: float, *, integer: bool) -> RealtimeError:
    kind = "integer" if integer else "decimal"
    return RealtimeError(
        f"Invalid '{param}': {kind} above maximum value. Expected a value <= {maximum:g},"
        f" but got {given:g} instead.",
        code=f"{kind}_above_max_value",
        param=param,
    )


def invalid_type(param: str, expected: str, given: object) -> RealtimeError:
    return RealtimeError(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(given)} instead.",
        code="invalid_type",
        param=param,
    )


def unknown_parameter(param: str) -> RealtimeError:
    return RealtimeError(f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param)


def missing_parameter(param: str) -> RealtimeError:
    return RealtimeError(
        f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# -- server events ------------------------------------------------------------------


def event(kind: str, **fields: Any) -> Message:
    """A server event of type ``kind`` with a fresh ``event_id``."""
    return {"type": kind, "event_id": new_id("event"), **fields}


def usage(model: str | None, audio_seconds: float, transcript: str) -> Message:
    """A plausible ``usage`` for a completed transcription (simulated numbers)."""
    if model in DURATION_BILLED_MODELS:
        return {"type": "duration", "seconds": round(audio_seconds, 3)}
    audio_tokens = math.ceil(audio_seconds * 10)
    text_tokens = len(transcript.split())
    return {
        "type": "tokens",
        "total_tokens": audio_tokens + text_tokens,
        "input_tokens": audio_tokens,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
        "output_tokens": text_tokens,
    }


def user_item(item_id: str, transcript: str | None) -> Message:
    """The conversation item a committed buffer becomes."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def conversation_session(session_id: str, model: str, expires_at: int) -> Message:
    """The session object of a conversation (``type: realtime``) session."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "expires_at": expires_at,
        "output_modalities": ["audio"],
        "simulator": True,
    }
