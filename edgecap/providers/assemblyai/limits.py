"""What a server message may carry, checked where it enters (no I/O).

Everything edgecap does with a server message (JSON on MQTT, the SQLite spool, capture
times, the log) assumes plain values: finite numbers in a sane range and text that is valid
Unicode and not unbounded. The parser (`messages.py`) checks every field with these helpers:

- a number that is not finite or out of its range makes the message malformed
  (`ProtocolError`: the session logs it and skips the message);
- text has each lone UTF-16 surrogate (a `"\\ud800"` escape that JSON allows and UTF-8
  cannot encode) replaced by U+FFFD, and is cut at its limit.

The limits are what a subscriber can rely on (docs/mqtt.md, "Limits").
"""

from __future__ import annotations

import re

from edgecap.providers.turn import ProtocolError

MAX_TURN_ORDER = 1_000_000
"""`turn_order` is 0..this (a 3-hour session with a turn every 100 ms has 108,000)."""
MAX_AUDIO_MS = 86_400_000
"""Word times are 0..this ms of session audio (24 h; sessions are capped at a few hours)."""
MAX_TEXT_CHARS = 10_000
"""A turn's transcript, and the texts of its words together, are cut to this many chars."""
MAX_WORDS = 1_000
"""Words kept per turn (about 7 minutes of speech without a pause that ends the turn)."""
MAX_LINE_CHARS = 500
"""An `Error`/`Warning` text is cut to this (it goes into the log and the status)."""
MAX_ID_CHARS = 128
"""`Begin.id` (the session id, part of every turn id) and other names."""
MAX_SECONDS = 86_400.0
"""`Termination` durations above this (or not finite) are treated as absent."""
MAX_UNIX_SECONDS = 10_000_000_000
"""`Begin.expires_at` is Unix seconds before the year 2286."""
MAX_CLOSE_CODE = 65_535
MAX_LABEL_CHARS = 16
"""A speaker label ("A", "B", ..., "UNKNOWN", "PENDING"): letters, digits, `_`, `-`."""
MAX_LANGUAGE_CHARS = 35
"""A language code (BCP 47 says 35 characters are enough for any tag in practice)."""
MAX_REVISIONS = 100_000
"""Entries kept from one `SpeakerRevision` (one per revised turn of the session)."""
MAX_REVISION_WORDS = 200_000
"""Words kept from one `SpeakerRevision`, all its entries together."""


_SURROGATE = re.compile("[\ud800-\udfff]")


def show(value: object) -> str:
    """A short, printable rendering of a rejected value for the one-line error."""
    return f"{value!r:.60}"


def number(value: object, where: str, low: float, high: float) -> int | float:
    """`value` when it is a number (not a bool) within low..high; else `ProtocolError`.

    NaN fails every comparison and infinities or huge integers are out of range, so one
    range check covers them all (a huge int is compared exactly, never converted)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{where} should be a number, got {show(value)}")
    if not low <= value <= high:
        raise ProtocolError(
            f"{where} should be within {_bound(low)}..{_bound(high)}, got {show(value)}"
        )
    return value


def _bound(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def optional_number(value: object, low: float, high: float) -> int | float | None:
    """`value` when it is a number within low..high, else None (absent or unusable)."""
    try:
        return None if value is None else number(value, "", low, high)
    except ProtocolError:
        return None


def unicode_safe(value: str) -> tuple[str, int]:
    """`value` with every lone surrogate replaced by U+FFFD, and how many were replaced.

    `json.loads` joins an escaped surrogate pair into one character, so any surrogate left
    in a decoded string is unpaired: UTF-8 (MQTT, SQLite, the journal) cannot encode it."""
    if value.isascii():
        return value, 0
    return _SURROGATE.subn("\ufffd", value)


def line(value: object, limit: int = MAX_LINE_CHARS) -> str:
    """Free text (an error message, an unknown type) as safe, bounded text."""
    text = value if isinstance(value, str) else str(value)
    return unicode_safe(text[:limit])[0]
