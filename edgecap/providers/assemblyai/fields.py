"""Field checks shared by the message parsers (no I/O).

A required field that is missing or of the wrong type makes the message malformed
(`ProtocolError`). An optional field that is unusable (a speaker label or a language code
that is not one, a number out of range) is dropped: the message is used without it and
the drop is noted in its `repairs`, so one odd field never costs a turn.
"""

from __future__ import annotations

import re
from typing import Any

from edgecap.providers.assemblyai.limits import (
    MAX_LABEL_CHARS,
    MAX_LANGUAGE_CHARS,
    optional_number,
    show,
    unicode_safe,
)
from edgecap.providers.turn import ProtocolError

NUMBER = (int, float)
NOTES_SHOWN = 3

_LABEL = re.compile(r"[A-Za-z0-9_-]+")
# BCP 47 in the shapes servers use: "en", "pt-BR", "zh-Hant-TW", AssemblyAI's "en_us"
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")


def field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """`data[name]`, which must be there and of `kind` (a bool is never a number)."""
    if name not in data:
        raise ProtocolError(f"{what} message without {name!r}")
    value = data[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ProtocolError(f"{what}.{name} should be {_kind_name(kinds)}, got {value!r}")
    if not isinstance(value, kind):
        raise ProtocolError(f"{what}.{name} should be {_kind_name(kinds)}, got {show(value)}")
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)


def optional(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """`data[name]` when it is of `kind` (not a bool), else None."""
    value = data.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, kind):
        return None
    return value


class Repairs:
    """What parsing changed in one message: text sanitised and cut, fields dropped."""

    def __init__(self) -> None:
        self.replaced = 0
        self.repairs: list[str] = []
        self.more = 0

    def note(self, repair: str) -> None:
        if len(self.repairs) < NOTES_SHOWN:
            self.repairs.append(repair)
        else:
            self.more += 1

    def text(self, value: str, limit: int, what: str) -> str:
        if len(value) > limit:
            self.note(f"{what} cut from {len(value)} to {limit} characters")
            value = value[:limit]
        safe, n = unicode_safe(value)
        self.replaced += n
        return safe

    def label(self, data: dict[str, Any], name: str, what: str) -> str | None:
        """An optional speaker label ("A", "B", ..., "UNKNOWN", "PENDING"); anything else
        (not a string, too long, other characters) is dropped and noted."""
        value = data.get(name)
        if value is None:
            return None
        if isinstance(value, str) and len(value) <= MAX_LABEL_CHARS and _LABEL.fullmatch(value):
            return value
        self.note(
            f"{what}.{name} dropped: should be a speaker label (1..{MAX_LABEL_CHARS} letters, "
            f"digits, '_' or '-'), got {show(value)}"
        )
        return None

    def language(self, data: dict[str, Any], name: str, what: str) -> str | None:
        """An optional language code ("en", "pt-BR"); anything else is dropped and noted."""
        value = data.get(name)
        if value is None:
            return None
        if (
            isinstance(value, str)
            and len(value) <= MAX_LANGUAGE_CHARS
            and _LANGUAGE.fullmatch(value)
        ):
            return value
        self.note(f"{what}.{name} dropped: should be a language code, got {show(value)}")
        return None

    def fraction(self, data: dict[str, Any], name: str, what: str) -> float | None:
        """An optional number from 0 to 1; anything else is dropped and noted."""
        value = data.get(name)
        if value is None:
            return None
        number = optional_number(value, 0, 1)
        if number is None:
            self.note(f"{what}.{name} dropped: should be a number within 0..1, got {show(value)}")
            return None
        return float(number)

    def notes(self) -> tuple[str, ...]:
        if self.more:
            self.repairs.append(f"{self.more} more repair(s)")
        if self.replaced:
            self.repairs.append(
                f"{self.replaced} lone UTF-16 surrogate(s) (invalid Unicode) replaced by U+FFFD"
            )
        return tuple(self.repairs)
