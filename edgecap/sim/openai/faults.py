"""Scripted faults for the OpenAI Realtime simulator's WebSocket.

A :class:`RealtimeFault` describes what goes wrong in one connection; plans are queued
(FIFO) and each upgrade request on ``/v1/realtime`` that passes authentication takes the
next one (a default plan applies when the queue is empty; a 401 takes none).

Compact text form (``edgecap simulate --provider openai --fault SPEC``)::

    handshake:STATUS              refuse the upgrade with HTTP STATUS (403, 429, 500 ...)
                                  and an OpenAI-style JSON error body
    handshake-hang                read the upgrade request, never answer it
    no-created                    accept the upgrade, never send session.created
    drop@WHEN                     cut the TCP connection (1006 at the client)
    stall@WHEN                    stop reading and sending, keep TCP open
    error[:CODE[:MESSAGE]]@WHEN   an `error` event (type server_error), then close CODE
                                  (default 1011)
    fail-item@WHEN                the next item committed at or after WHEN gets
                                  conversation.item.input_audio_transcription.failed

    WHEN is audio received once the session is configured (3s, 500ms), wall time since
    session.created (wall=3s), or utterance=N: right after the N-th utterance (1-based)
    of the session is detected, i.e. mid-utterance; omitted means right after
    session.created. A suffix *N repeats the plan N times.

Examples: ``handshake:403``, ``drop@utterance=2``, ``error:1011@wall=2s``,
``fail-item@utterance=1``, ``no-created``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from edgecap.sim.faults import _duration_ms

FaultKind = Literal[
    "handshake", "handshake_hang", "no_created", "drop", "stall", "error", "fail_item", "inject"
]
ENDS_SESSION: frozenset[str] = frozenset({"drop", "stall", "error"})

HANDSHAKE_ERRORS: dict[int, tuple[str, str | None, str]] = {
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "invalid_request_error",
        None,
        "You are not allowed to use the Realtime API with this key (simulated 403: the"
        " project's limits exclude realtime models, a restricted key lacks permissions, or"
        " billing is not set up).",
    ),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (simulated)."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


@dataclass(frozen=True)
class RealtimeFault:
    """What goes wrong in one connection; build with the class methods."""

    kind: FaultKind
    status: int | None = None
    code: int | None = None  # close code of an `error` fault
    message: str | None = None
    after_audio_ms: float | None = None
    after_seconds: float | None = None
    utterance: int | None = None  # 1-based
    body: dict[str, Any] | None = None
    frames: tuple[str, ...] = field(default=())

    @classmethod
    def handshake(cls, status: int, body: dict[str, Any] | None = None) -> RealtimeFault:
        """Refuse the upgrade with ``status`` and a JSON body (OpenAI's error shape)."""
        return cls("handshake", status=status, body=body)

    @classmethod
    def handshake_hang(cls) -> RealtimeFault:
        return cls("handshake_hang")

    @classmethod
    def no_created(cls) -> RealtimeFault:
        """Complete the upgrade, then never send ``session.created``."""
        return cls("no_created")

    @classmethod
    def drop(
        cls,
        *,
        after_audio_ms: float | None = None,
        after_seconds: float | None = None,
        utterance: int | None = None,
    ) -> RealtimeFault:
        """Abort the TCP connection at the trigger (no completed for the open item)."""
        return cls(
            "drop", after_audio_ms=after_audio_ms, after_seconds=after_seconds, utterance=utterance
        )

    @classmethod
    def stall(
        cls,
        *,
        after_audio_ms: float | None = None,
        after_seconds: float | None = None,
        utterance: int | None = None,
    ) -> RealtimeFault:
        return cls(
            "stall", after_audio_ms=after_audio_ms, after_seconds=after_seconds, utterance=utterance
        )

    @classmethod
    def error(
        cls,
        code: int = 1011,
        message: str | None = None,
        *,
        after_audio_ms: float | None = None,
        after_seconds: float | None = None,
        utterance: int | None = None,
    ) -> RealtimeFault:
        """A ``server_error`` event, then close with ``code``."""
        return cls(
            "error",
            code=code,
            message=message,
            after_audio_ms=after_audio_ms,
            after_seconds=after_seconds,
            utterance=utterance,
        )

    @classmethod
    def fail_item(
        cls,
        message: str | None = None,
        *,
        after_audio_ms: float | None = None,
        after_seconds: float | None = None,
        utterance: int | None = None,
    ) -> RealtimeFault:
        """The next item committed at or after the trigger gets ``.failed``."""
        return cls(
            "fail_item",
            message=message,
            after_audio_ms=after_audio_ms,
            after_seconds=after_seconds,
            utterance=utterance,
        )

    @classmethod
    def inject(cls, frames: list[str] | tuple[str, ...], **trigger: Any) -> RealtimeFault:
        """Send raw text ``frames`` at the trigger; the session goes on."""
        return cls("inject", frames=tuple(frames), **trigger)

    @property
    def ends_session(self) -> bool:
        return self.kind in ENDS_SESSION

    @property
    def immediate(self) -> bool:
        """No trigger: fires right after ``session.created``."""
        return self.after_audio_ms is None and self.after_seconds is None and self.utterance is None

    def triggered(self, audio_ms: float, utterances: int) -> bool:
        """True when the audio or the utterances so far reach the trigger."""
        if self.after_audio_ms is not None and audio_ms >= self.after_audio_ms:
            return True
        return self.utterance is not None and utterances >= self.utterance

    def handshake_body(self) -> dict[str, Any]:
        if self.body is not None:
            return self.body
        status = self.status or 500
        kind, code, message = HANDSHAKE_ERRORS.get(
            status, ("server_error", None, f"Simulated HTTP {status}.")
        )
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}


_REPEAT = re.compile(r"^(.*)\*(\d+)$")


def _trigger(when: str | None) -> dict[str, Any]:
    if when is None:
        return {}
    if when.startswith("wall="):
        return {"after_seconds": _duration_ms(when[len("wall=") :]) / 1000.0}
    if when.startswith("utterance="):
        count = when[len("utterance=") :]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"bad utterance number {count!r} (1, 2, ...)")
        return {"utterance": int(count)}
    return {"after_audio_ms": _duration_ms(when)}


def parse_realtime_fault(spec: str) -> list[RealtimeFault]:
    """Parse the compact text form (see the module docstring) into plans."""
    text, repeat = spec.strip(), 1
    repeat_match = _REPEAT.match(text)
    if repeat_match is not None:
        text, repeat = repeat_match.group(1), int(repeat_match.group(2))
    when: str | None = None
    if "@" in text:
        text, _, when = text.rpartition("@")
    kind, _, rest = text.partition(":")
    trigger = _trigger(when)
    plan: RealtimeFault
    if kind == "handshake" and rest.isdigit() and when is None:
        plan = RealtimeFault.handshake(int(rest))
    elif kind in ("handshake-hang", "no-created") and not rest and when is None:
        plan = (
            RealtimeFault.handshake_hang()
            if kind == "handshake-hang"
            else RealtimeFault.no_created()
        )
    elif kind in ("drop", "stall") and not rest:
        plan = RealtimeFault.drop(**trigger) if kind == "drop" else RealtimeFault.stall(**trigger)
    elif kind == "error":
        code_text, _, message = rest.partition(":")
        if code_text and not code_text.isdigit():
            raise ValueError(f"bad close code {code_text!r}")
        plan = RealtimeFault.error(int(code_text or 1011), message or None, **trigger)
    elif kind == "fail-item":
        plan = RealtimeFault.fail_item(rest or None, **trigger)
    else:
        raise ValueError(f"bad fault spec {spec!r}")
    return [plan] * repeat
