"""What ended or prevented a session, classified for the retry policy (provider-neutral).

Each provider maps what it observes (close codes, HTTP statuses, error events) to one of
these classes and one line for humans (`Classified.line`); `RetryPolicy` acts on the class.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorClass(StrEnum):
    TRANSIENT = "transient"  # retry promptly
    THROTTLED = "throttled"  # retry with a longer backoff
    SESSION_OVER = "session_over"  # expected end: open a new session when needed
    AUTH = "auth"  # re-mint once, then slow down and report
    CLIENT_BUG = "client_bug"  # edgecap sent something wrong: report loudly
    CONFIG = "config"  # the configuration points at the wrong thing


@dataclass(frozen=True, slots=True)
class Classified:
    error_class: ErrorClass
    code: int | None
    reason: str
    hint: str

    def line(self) -> str:
        if self.code is None:
            where = "error"
        else:
            where = f"HTTP {self.code}" if self.code < 1000 else f"close {self.code}"
        reason = f" {self.reason!r}" if self.reason else ""
        return f"{where}{reason}: {self.hint} [{self.error_class}]"


def classify_network(detail: str) -> Classified:
    """A network error or timeout while connecting or waiting (no close frame)."""
    return Classified(ErrorClass.TRANSIENT, None, "", detail)


__all__ = ["Classified", "ErrorClass", "classify_network"]
