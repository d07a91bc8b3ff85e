"""AssemblyAI v3 session rules for the streaming simulator (sans-I/O).

Current close-code era (after 2026-02-25): in-session errors use 3006-3009
rather than the older catch-all 3005. Functions here validate connection
parameters, audio frames, pacing and client text messages, and raise
:class:`SessionError` carrying the close code and the ``Error`` text.

Where the protocol notes leave the server's answer open (invalid or missing
connection parameters), the simulator closes with 3006 ``Invalid Message:``
before ``Begin``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgecap.sim.segmenter import Encoding, bytes_per_sample
from edgecap.sim.turns import Endpointing

API_VERSION = "2025-05-12"
MAX_MESSAGE_BYTES = 128 * 1024
MIN_FRAME_MS = 50.0
MAX_FRAME_MS = 1000.0
MAX_KEYTERMS = 100
MAX_CLOSE_REASON_BYTES = 123
LONG_REASON = "See Error message for details"

CLOSE_NORMAL = 1000
CLOSE_ABNORMAL = 1006
CLOSE_UNAUTHORIZED = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INVALID_MESSAGE = 3006
CLOSE_AUDIO_VIOLATION = 3007
CLOSE_SESSION_EXPIRED = 3008

SESSION_EXPIRED_TEXT = "Session Expired: Maximum session duration exceeded"
CLIENT_MESSAGE_TYPES = frozenset({"Terminate", "ForceEndpoint", "KeepAlive", "UpdateConfiguration"})


class SessionError(Exception):
    """A protocol violation: send ``Error`` with this text, then close with ``code``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def error_frame(code: int, text: str) -> dict[str, Any]:
    """The ``Error`` message sent just before an error close."""
    return {"type": "Error", "error_code": code, "error": text}


def close_reason(text: str) -> str:
    """A close reason that fits the 123-byte limit (long ones are replaced)."""
    if len(text.encode()) <= MAX_CLOSE_REASON_BYTES:
        return text
    return LONG_REASON


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _invalid(text: str) -> SessionError:
    return SessionError(CLOSE_INVALID_MESSAGE, f"Invalid Message: {text}")


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise _invalid(f"{name} must be true or false")


def _number(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _invalid(f"{name} must be a number") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise _invalid(f"{name} must be between {low:g} and {high:g}")
    return number


def parse_keyterms(value: Any) -> list[str]:
    """A ``keyterms_prompt`` value (JSON text or an already decoded list)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _invalid("keyterms_prompt must be a JSON array of strings") from None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise _invalid("keyterms_prompt must be a JSON array of strings")
    if len(value) > MAX_KEYTERMS:
        raise _invalid(f"keyterms_prompt has {len(value)} terms; at most {MAX_KEYTERMS} allowed")
    return list(value)


@dataclass
class SessionParams:
    """Connection parameters of one session, validated."""

    sample_rate: int
    encoding: Encoding = "pcm_s16le"
    speech_model: str | None = None
    format_turns: bool = False
    endpointing: Endpointing = field(default_factory=Endpointing)
    inactivity_timeout: float | None = None
    keyterms: list[str] = field(default_factory=list)


def parse_session_params(query: Mapping[str, str]) -> SessionParams:
    """Validate the query string of ``/v3/ws``; unknown parameters are ignored."""
    encoding: Encoding
    requested = query.get("encoding", "pcm_s16le")
    if requested == "pcm_s16le":
        encoding = "pcm_s16le"
    elif requested == "pcm_mulaw":
        encoding = "pcm_mulaw"
    else:
        raise _invalid(f"unsupported encoding {_shorten(requested)!r}")
    if "sample_rate" not in query:
        raise _invalid(f"sample_rate is required for {encoding}")
    rate = _number("sample_rate", query["sample_rate"], 8000, 96000)
    if rate != int(rate):
        raise _invalid("sample_rate must be an integer")
    params = SessionParams(sample_rate=int(rate), encoding=encoding)
    params.speech_model = query.get("speech_model") or None
    if "format_turns" in query:
        params.format_turns = _bool("format_turns", query["format_turns"])
    if "inactivity_timeout" in query:
        params.inactivity_timeout = _number(
            "inactivity_timeout", query["inactivity_timeout"], 5, 3600
        )
    if "keyterms_prompt" in query:
        params.keyterms = parse_keyterms(query["keyterms_prompt"])
    apply_endpointing(params.endpointing, query)
    return params


def apply_endpointing(target: Endpointing, fields: Mapping[str, Any]) -> None:
    """Apply endpointing fields from a query string or an ``UpdateConfiguration``."""
    if "end_of_turn_confidence_threshold" in fields:
        target.end_of_turn_confidence_threshold = _number(
            "end_of_turn_confidence_threshold", fields["end_of_turn_confidence_threshold"], 0, 1
        )
    for name in ("min_end_of_turn_silence_when_confident", "min_turn_silence"):
        if name in fields:
            target.min_turn_silence_ms = _number(name, fields[name], 0, 10000)
    if "max_turn_silence" in fields:
        target.max_turn_silence_ms = _number(
            "max_turn_silence", fields["max_turn_silence"], 0, 10000
        )


def frame_duration_ms(size: int, params: SessionParams) -> float:
    """Audio duration of a binary message of ``size`` bytes."""
    return size * 1000.0 / (bytes_per_sample(params.encoding) * params.sample_rate)


def check_frame(size: int, params: SessionParams) -> float:
    """Validate one audio message; return its duration in ms."""
    if size > MAX_MESSAGE_BYTES:
        raise SessionError(
            CLOSE_TOO_BIG, f"Message Too Big: {size} bytes. Maximum is {MAX_MESSAGE_BYTES} bytes"
        )
    duration = frame_duration_ms(size, params)
    if not MIN_FRAME_MS <= duration <= MAX_FRAME_MS:
        raise SessionError(
            CLOSE_AUDIO_VIOLATION,
            f"Input duration violation: {duration:g} ms. Expected between 50 and 1000 ms",
        )
    return duration


class RateCheck:
    """Reject audio sent faster than ``max_rate`` x real time plus a slack.

    Elapsed time counts from the arrival of the first audio message; pass
    ``max_rate=None`` to disable the check.
    """

    def __init__(self, max_rate: float | None = 1.25, slack_seconds: float = 2.0) -> None:
        self.max_rate = max_rate
        self.slack_seconds = slack_seconds
        self.audio_seconds = 0.0
        self._first_at: float | None = None

    def add(self, audio_seconds: float, now: float) -> None:
        """Account for one audio message received at monotonic time ``now``."""
        if self._first_at is None:
            self._first_at = now
        self.audio_seconds += audio_seconds
        if self.max_rate is None:
            return
        elapsed = now - self._first_at
        if self.audio_seconds > elapsed * self.max_rate + self.slack_seconds:
            raise SessionError(
                CLOSE_AUDIO_VIOLATION,
                "Audio Transmission Rate Exceeded: "
                f"Received {self.audio_seconds:.1f} sec. audio in {elapsed:.1f} sec",
            )


def parse_client_message(text: str) -> dict[str, Any]:
    """Decode a client text message; anything but a known v3 message is a 3006."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        raise SessionError(CLOSE_INVALID_MESSAGE, f"Invalid JSON: {_shorten(text)}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise _invalid(_shorten(text))
    if message["type"] not in CLIENT_MESSAGE_TYPES:
        raise SessionError(
            CLOSE_INVALID_MESSAGE, f"Invalid Message Type: {_shorten(message['type'])}"
        )
    return message
