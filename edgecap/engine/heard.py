"""Speech heard, nothing transcribed (no I/O).

With the voice gate, a session opens because the local detector heard speech. When that
session ends without a single turn (a cough, noise the detector took for speech, another
language, a provider that returns nothing), users want to know: it is the signal to tune
`session.vad_threshold` or to notice a broken provider. `HeardWithoutTurns` follows one
gate opening at a time: `opened` at the onset (with the gate's speech total), `turn` for
every turn message (partial or final: the server understood something), and
`session_ended` decides from the speech heard since.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

MIN_SPEECH_SECONDS = 0.3
"""Less speech than this is not worth an event (the detector's onset alone is 0.15 s)."""


@dataclass(frozen=True, slots=True)
class SpeechWithoutTranscript:
    """A session opened for speech ended with no turn."""

    session_id: str
    speech_seconds: float
    """Speech the local detector heard from the onset to the session's end."""
    at: float
    """Unix time the session ended."""


@dataclass
class HeardWithoutTurns:
    """Speech totals come from the gate (`VoiceGate.speech_seconds`, cumulative)."""

    min_speech_seconds: float = MIN_SPEECH_SECONDS
    clock: Callable[[], float] = time.time
    armed: bool = False
    speech_from: float = 0.0
    turns: int = 0
    count: int = 0
    """Events decided so far (for the stats)."""

    def opened(self, speech_total: float) -> None:
        """The gate opened for speech; `speech_total`: the gate's speech seconds before the
        onset's first speech frame."""
        self.armed, self.speech_from, self.turns = True, speech_total, 0

    def turn(self) -> None:
        self.turns += 1

    def disarm(self) -> None:
        """The privacy mute: nothing heard counts."""
        self.armed = False

    def session_ended(self, session_id: str, speech_total: float) -> SpeechWithoutTranscript | None:
        """A session ended (`speech_total`: the gate's speech seconds now): the event when
        speech was heard since the onset and no turn came."""
        if not self.armed:
            return None
        self.armed = False
        seconds = max(0.0, speech_total - self.speech_from)
        if self.turns or seconds < self.min_speech_seconds:
            return None
        self.count += 1
        return SpeechWithoutTranscript(session_id, round(seconds, 2), self.clock())


__all__ = ["MIN_SPEECH_SECONDS", "HeardWithoutTurns", "SpeechWithoutTranscript"]
