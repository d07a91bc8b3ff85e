"""AssemblyAI v3 session rules for the streaming simulator (sans-I/O).

Current close-code era (after 2026-02-25): in-session errors use 3006-3009
rather than the older catch-all 3005. Functions here validate audio frames,
pacing and client text messages, and raise :class:`SessionError` carrying the
close code and the ``Error`` text (connection parameters: :mod:`edgecap.sim.params`).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from edgecap.sim.segmenter import Encoding, bytes_per_sample

API_VERSION = "2025-05-12"
MAX_MESSAGE_BYTES = 128 * 1024
MIN_FRAME_MS = 50.0
MAX_FRAME_MS = 1000.0
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


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters (for quoting client input in an Error)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def invalid(text: str) -> SessionError:
    """A 3006 ``Invalid Message: <text>`` error."""
    return SessionError(CLOSE_INVALID_MESSAGE, f"Invalid Message: {text}")


def parse_bool(name: str, value: str) -> bool:
    """A boolean query parameter (``true``/``false``, also 1/0 and yes/no)."""
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise invalid(f"{name} must be true or false")


def parse_number(name: str, value: Any, low: float, high: float) -> float:
    """A number (query text or JSON value) within ``low``..``high``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise invalid(f"{name} must be a number") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise invalid(f"{name} must be between {low:g} and {high:g}")
    return number


class AudioFormat(Protocol):
    """What frame checks need to know of a session (its parameters)."""

    sample_rate: int
    encoding: Encoding


def frame_duration_ms(size: int, params: AudioFormat) -> float:
    """Audio duration of a binary message of ``size`` bytes."""
    return size * 1000.0 / (bytes_per_sample(params.encoding) * params.sample_rate)


def check_frame(size: int, params: AudioFormat) -> float:
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
        raise SessionError(CLOSE_INVALID_MESSAGE, f"Invalid JSON: {shorten(text)}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise invalid(shorten(text))
    if message["type"] not in CLIENT_MESSAGE_TYPES:
        raise SessionError(
            CLOSE_INVALID_MESSAGE, f"Invalid Message Type: {shorten(message['type'])}"
        )
    return message
