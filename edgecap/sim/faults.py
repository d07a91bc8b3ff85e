"""Scripted faults for the streaming simulator.

A :class:`FaultPlan` describes what goes wrong in one WebSocket connection.
Plans are queued (FIFO) and each upgrade request, on ``/v3/ws`` or on the
KeyPool-compatible proxy path ``/v1/assemblyai/v3/ws``, takes the next one; a
default plan applies when the queue is empty. On the proxy path the team
credential is checked first: an upgrade refused with 401 for a bad credential
takes no plan. A ``handshake`` plan there is the proxy refusing the upgrade
(403, 429, 502, 503 ...), with KeyPool's error texts as the JSON body.

Compact text form (``edgecap simulate --fault SPEC``)::

    handshake:STATUS            reject the upgrade with HTTP STATUS and a JSON body
                                (429 adds Retry-After: 1)
    handshake-hang              accept TCP, read the upgrade request, never answer it
    no-begin                    accept the upgrade, then never send Begin
    before-begin:CODE[:REASON]  accept, then close with CODE before Begin
    close:CODE[:REASON]@WHEN    Error frame (not for 1000) then close with CODE
    drop@WHEN                   cut the TCP connection (1006 at the client)
    stall@WHEN                  stop reading and sending, keep TCP open

    WHEN is audio received (3s, 500ms) or wall time since Begin (wall=3s);
    omitted means right after Begin. A suffix *N repeats the plan N times.

Examples: ``close:1011@3s``, ``close:3005:Session Cancelled@wall=2s``,
``drop@2s``, ``handshake:401``, ``handshake:503*3``, ``before-begin:4001``.

From Python only, :meth:`FaultPlan.inject` sends chosen raw text frames at the trigger
(malformed or hostile server messages) and the session then goes on as usual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal[
    "handshake", "handshake_hang", "no_begin", "before_begin", "close", "drop", "stall", "inject"
]

DEFAULT_REASONS: dict[int, str] = {
    1000: "",
    1001: "Going Away",
    1008: "Unauthorized Connection: Invalid token",
    1011: "Internal Server Error",
    1013: "Temporary server condition forced blocking client's request",
    3005: "Session Cancelled: An error occurred",
    3006: "Invalid Message: simulated fault",
    3007: "Audio Transmission Rate Exceeded: simulated fault",
    3008: "Session Expired: Maximum session duration exceeded",
    3009: "Unauthorized Connection: Too many concurrent sessions",
    4001: "Not authorized",
}

KEYPOOL_ERRORS: dict[int, str] = {
    401: "invalid team token",
    403: "this team token may not use assemblyai",
    429: "rate limited",
    502: "upstream failure",
    503: "no upstream key available",
}
"""The proxy's ``{"error": ...}`` texts by status (shared with the token service)."""

_HTTP_ERRORS: dict[int, str] = {
    400: "Bad request",
    401: "Unauthorized",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


@dataclass(frozen=True)
class FaultPlan:
    """What goes wrong in one connection; build with the class methods."""

    kind: FaultKind
    status: int | None = None
    code: int | None = None
    reason: str | None = None
    after_audio_ms: float | None = None
    after_seconds: float | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    frames: tuple[str, ...] = ()

    @classmethod
    def handshake(
        cls,
        status: int,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> FaultPlan:
        """Reject the HTTP upgrade with ``status`` and a JSON body."""
        return cls("handshake", status=status, body=body, headers=dict(headers or {}))

    @classmethod
    def handshake_hang(cls) -> FaultPlan:
        """Accept the TCP connection and the upgrade request, and never answer it."""
        return cls("handshake_hang")

    @classmethod
    def no_begin(cls) -> FaultPlan:
        """Complete the upgrade, then never send Begin (pings and a close are answered)."""
        return cls("no_begin")

    @classmethod
    def close_before_begin(cls, code: int, reason: str | None = None) -> FaultPlan:
        """Accept the upgrade, then close with ``code`` before ``Begin``."""
        return cls("before_begin", code=code, reason=reason)

    @classmethod
    def close(
        cls,
        code: int,
        reason: str | None = None,
        *,
        after_audio_ms: float | None = None,
        after_seconds: float | None = None,
    ) -> FaultPlan:
        """Close with ``code`` (Error frame first unless 1000) at the trigger."""
        return cls(
            "close",
            code=code,
            reason=reason,
            after_audio_ms=after_audio_ms,
            after_seconds=after_seconds,
        )

    @classmethod
    def drop(
        cls, *, after_audio_ms: float | None = None, after_seconds: float | None = None
    ) -> FaultPlan:
        """Abort the TCP connection without a close frame at the trigger."""
        return cls("drop", after_audio_ms=after_audio_ms, after_seconds=after_seconds)

    @classmethod
    def stall(
        cls, *, after_audio_ms: float | None = None, after_seconds: float | None = None
    ) -> FaultPlan:
        """Stop reading and sending (TCP stays open) at the trigger."""
        return cls("stall", after_audio_ms=after_audio_ms, after_seconds=after_seconds)

    @classmethod
    def inject(
        cls,
        frames: list[str] | tuple[str, ...],
        *,
        after_audio_ms: float | None = None,
        after_seconds: float | None = None,
    ) -> FaultPlan:
        """Send ``frames`` (raw text, sent as they are) at the trigger; the session goes on."""
        return cls(
            "inject",
            frames=tuple(frames),
            after_audio_ms=after_audio_ms,
            after_seconds=after_seconds,
        )

    @property
    def ends_session(self) -> bool:
        """Whether firing the plan ends the connection (every kind but ``inject``)."""
        return self.kind != "inject"

    @property
    def close_text(self) -> str:
        """The Error text / close reason used for ``close`` and ``before_begin``."""
        if self.reason is not None:
            return self.reason
        return DEFAULT_REASONS.get(self.code or 0, "Simulated fault")

    def handshake_body(self, *, proxy: bool = False) -> dict[str, Any]:
        """The JSON body of a handshake rejection (KeyPool's texts on the proxy path)."""
        if self.body is not None:
            return self.body
        status = self.status or 500
        texts = KEYPOOL_ERRORS if proxy and status in KEYPOOL_ERRORS else _HTTP_ERRORS
        return {"error": texts.get(status, "Simulated failure"), "simulator": True}

    def triggered_by_audio(self, audio_ms: float) -> bool:
        """True when the audio received so far reaches the audio trigger."""
        if self.kind not in ("close", "drop", "stall", "inject"):
            return False
        if self.after_audio_ms is None:
            return self.after_seconds is None
        return audio_ms >= self.after_audio_ms


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")
_REPEAT = re.compile(r"^(.*)\*(\d+)$")


def _duration_ms(text: str) -> float:
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"bad duration {text!r} (use e.g. 3s or 500ms)")
    value = float(match.group(1))
    return value if match.group(2) == "ms" else value * 1000.0


def _code(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"bad close code or status {text!r}")
    return int(text)


def parse_fault(spec: str) -> list[FaultPlan]:
    """Parse the compact text form (see the module docstring) into plans."""
    text = spec.strip()
    repeat = 1
    repeat_match = _REPEAT.match(text)
    if repeat_match is not None:
        text, repeat = repeat_match.group(1), int(repeat_match.group(2))
    audio_ms: float | None = None
    wall_s: float | None = None
    if "@" in text:
        text, _, when = text.rpartition("@")
        if when.startswith("wall="):
            wall_s = _duration_ms(when[len("wall=") :]) / 1000.0
        else:
            audio_ms = _duration_ms(when)
    kind, _, rest = text.partition(":")
    code_text, _, reason_text = rest.partition(":")
    reason = reason_text or None
    plan: FaultPlan
    if kind == "handshake":
        plan = FaultPlan.handshake(_code(code_text))
    elif kind in ("handshake-hang", "handshake_hang") and not rest:
        plan = FaultPlan.handshake_hang()
    elif kind in ("no-begin", "no_begin") and not rest:
        plan = FaultPlan.no_begin()
    elif kind in ("before-begin", "before_begin"):
        plan = FaultPlan.close_before_begin(_code(code_text), reason)
    elif kind == "close":
        plan = FaultPlan.close(
            _code(code_text), reason, after_audio_ms=audio_ms, after_seconds=wall_s
        )
    elif kind == "drop" and not rest:
        plan = FaultPlan.drop(after_audio_ms=audio_ms, after_seconds=wall_s)
    elif kind == "stall" and not rest:
        plan = FaultPlan.stall(after_audio_ms=audio_ms, after_seconds=wall_s)
    else:
        raise ValueError(f"bad fault spec {spec!r}")
    return [plan] * repeat
