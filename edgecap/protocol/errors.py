"""Classify what ended or prevented a session (no I/O).

Input is what was observed: a WebSocket close (code + reason, possibly preceded by an
`Error` frame), an HTTP status at the upgrade, a token-source failure, a network error or
a timeout. Output is a class that drives the retry policy and one line for humans. Codes
moved in 2026 (every in-session error was 3005 until 2026-02-25, the concurrency limit was
1008), so the reason prefix is consulted as well as the code.
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
        where = f"close {self.code}" if self.code is not None else "error"
        reason = f" {self.reason!r}" if self.reason else ""
        return f"{where}{reason}: {self.hint} [{self.error_class}]"


_V3 = "wss://streaming.assemblyai.com/v3/ws"


def classify_close(
    code: int | None, reason: str = "", *, after_terminate: bool = False
) -> Classified:
    """A WebSocket close as seen by the client (code None or 1006: no close frame)."""
    r = reason.strip()
    low = r.lower()

    def c(cls: ErrorClass, hint: str) -> Classified:
        return Classified(cls, code, r, hint)

    # Reason prefixes first: they survived the 2026 renumbering.
    if low.startswith("unauthorized connection: too many concurrent sessions") or (
        "too many" in low and "session" in low
    ):
        return c(ErrorClass.THROTTLED, "AssemblyAI's new-session rate limit was hit; backing off")
    if low.startswith("session expired"):
        return c(
            ErrorClass.SESSION_OVER,
            "the session reached its maximum duration; a new session is opened with a fresh token",
        )
    if low.startswith("audio transmission rate exceeded"):
        return c(ErrorClass.CLIENT_BUG, "audio was sent faster than real time; a pacing bug")
    if low.startswith("input duration violation"):
        return c(ErrorClass.CLIENT_BUG, "an audio message was outside 50-1000 ms; a chunking bug")
    if low.startswith(("invalid message", "invalid json")):
        return c(ErrorClass.CLIENT_BUG, "the server rejected a message edgecap sent; a bug")
    if "inactiv" in low or "idle" in low:
        return c(ErrorClass.SESSION_OVER, "the server closed the session for inactivity")
    if low.startswith("unauthorized connection") and code in (None, 1008, 3005):
        return c(
            ErrorClass.AUTH,
            "the streaming server rejected the token (missing, invalid, reused or expired), "
            "or the account cannot stream (balance, disabled key)",
        )

    if code == 1000:
        if after_terminate:
            return c(ErrorClass.SESSION_OVER, "session ended normally after Terminate")
        return c(ErrorClass.TRANSIENT, "the server closed the session normally without Terminate")
    if code is None or code == 1006:
        return c(ErrorClass.TRANSIENT, "connection lost without a close frame (network drop)")
    if code == 1008:
        return c(
            ErrorClass.AUTH,
            "unauthorized: the token was rejected; edgecap re-mints once, then backs off",
        )
    if code == 1009:
        return c(ErrorClass.CLIENT_BUG, "a message exceeded 128 KB; a chunking bug")
    if code in (1011, 1012, 1013, 1001):
        return c(ErrorClass.TRANSIENT, "temporary server condition; retrying")
    if code == 3005:
        return c(ErrorClass.TRANSIENT, "the server cancelled the session (server error); retrying")
    if code == 3006:
        return c(ErrorClass.CLIENT_BUG, "the server rejected a message edgecap sent; a bug")
    if code == 3007:
        return c(ErrorClass.CLIENT_BUG, "audio pacing or chunk size violated the API limits; a bug")
    if code == 3008:
        return c(ErrorClass.SESSION_OVER, "maximum session duration reached; rotating")
    if code == 3009:
        return c(ErrorClass.THROTTLED, "too many new sessions; backing off")
    if code == 4001 or low.startswith("not authorized"):
        return c(
            ErrorClass.CONFIG,
            "'Not authorized' (4001) is a legacy v2 realtime answer: streaming.url points at a "
            f"v2-era endpoint or proxy; use {_V3} with a v3 token",
        )
    if code is not None and 4000 <= code < 4200:
        return c(ErrorClass.CONFIG, f"a v2-era close code: use {_V3}")
    return c(ErrorClass.TRANSIENT, "unexpected close; retrying with backoff")


def classify_http_status(status: int, *, where: str = "streaming server") -> Classified:
    """An HTTP status: at the WebSocket upgrade, or from the token source."""
    if status in (401, 403):
        hint = (
            f"the {where} refused the credentials (HTTP {status}); check the token source "
            "and its credential"
        )
        return Classified(ErrorClass.AUTH, status, "", hint)
    if status == 429:
        return Classified(ErrorClass.THROTTLED, status, "", f"the {where} is rate limiting")
    if status == 404:
        return Classified(
            ErrorClass.CONFIG,
            status,
            "",
            f"the {where} has no such endpoint (HTTP 404); check the URL",
        )
    if status >= 500:
        return Classified(ErrorClass.TRANSIENT, status, "", f"the {where} failed (HTTP {status})")
    return Classified(ErrorClass.CLIENT_BUG, status, "", f"the {where} answered HTTP {status}")
