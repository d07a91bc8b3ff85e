"""Cutting captured audio into utterances for the Sync API (pure: frames, verdicts and capture
times in, utterance boundaries out; no clock of its own).

An utterance is the pre-roll (counted back from the detector's first speech frame, less its
lag, as the streaming gate does: `billing.admission`), the speech and the hang-over, until
the voice gate stops hearing speech. As the Sync API bills every second sent, two trims
apply: the pre-roll's leading room silence (below `quiet_limit`, `trim_margin_ms` kept) and
the hang-over beyond `tail_ms` after the last speech frame (held back while it lasts, sent
if speech resumes, dropped when the utterance ends). The Sync API takes 80 ms to 120 s, so
an utterance that reaches `split_after_ms` ends at its next pause (a frame the detector
calls silence) and the speech goes on in a new utterance; one that never pauses is cut at
`max_ms`. The cut is made forwards (at a frame still to come), never back in time, so audio
already uploaded while the person spoke is never taken back. A piece shorter than `min_ms`
is not sent.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from edgecap.audio.level import peak_below
from edgecap.billing.admission import DETECTOR_LAG_MS
from edgecap.billing.gate import GateMode, GateSettings, VoiceGate

MIN_CLIP_MS = 80
"""The Sync API's shortest clip."""
MAX_CLIP_MS = 120_000
"""The Sync API's longest clip."""


Captured = tuple[float, float, bytes]
"""A frame: monotonic and wall capture time of its first sample, PCM."""


class EndReason(StrEnum):
    PAUSE = "pause"  # the voice gate stopped hearing speech (after the hang-over)
    SPLIT = "split"  # long: ended at a pause after `split_after_ms`
    MAX = "max"  # no pause came: cut at `max_ms`
    STOP = "stop"  # the daemon is stopping, or the audio stopped


@dataclass(frozen=True, slots=True)
class SegmentSettings:
    gate: GateSettings
    max_ms: int = MAX_CLIP_MS
    split_after_ms: int = 90_000
    min_ms: int = MIN_CLIP_MS
    quiet_limit: int = 0
    """Peak below which a pre-roll frame is room silence (0: keep the whole pre-roll)."""
    trim_margin_ms: int = 100
    """Silence kept before the first frame above `quiet_limit`."""
    tail_ms: int = 10_000
    """Audio sent after the detector's last speech frame: the rest of the hang-over is held
    back and sent only if speech resumes (the Sync API bills it; the default sends all)."""

    @property
    def preroll_ms(self) -> int:
        return self.gate.preroll_ms + DETECTOR_LAG_MS


@dataclass(frozen=True, slots=True)
class Opened:
    """An utterance starts: `audio` (the pre-roll and this frame) is its beginning."""

    started_at: float
    """Capture time (wall clock) of its first sample."""
    audio: bytes


@dataclass(frozen=True, slots=True)
class Appended:
    audio: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The open utterance ended after its last appended audio (`send` False: too short)."""

    ended_at: float
    duration_ms: int
    reason: EndReason
    send: bool


Event = Opened | Appended | Closed


class UtteranceSegmenter:
    """Per captured frame, what happens to the utterance (events in order)."""

    def __init__(self, settings: SegmentSettings) -> None:
        self.s = settings
        self.gate = VoiceGate(_voice(settings.gate))
        keep = max(1, -(-(settings.preroll_ms + settings.gate.onset_window_ms) // _frame(settings)))
        self._recent: deque[tuple[float, float, bytes]] = deque(maxlen=keep)
        self._open = False
        self._ms = 0
        self._end_at = 0.0
        self._continue = False  # a split: the next frame opens the next utterance at once
        self._quiet = 0  # frames since the detector last said speech
        self._held: list[tuple[float, bytes]] = []  # silence beyond `tail_ms`, not sent yet

    @property
    def open(self) -> bool:
        return self._open

    def feed(self, monotonic: float, wall: float, pcm: bytes, speech: bool) -> list[Event]:
        """One frame (capture times of its first sample) with the detector's verdict."""
        ms = _frame(self.s)
        self.gate.feed(monotonic, speech)
        if not self._open:
            self._recent.append((monotonic, wall, pcm))
            if self._continue and self.gate.speaking:
                self._continue = False
                return self._start([(monotonic, wall, pcm)])
            self._continue = False
            if self.gate.speaking and self.gate.onset_at is not None:
                since = self.gate.onset_at - self.s.preroll_ms / 1000
                return self._start([f for f in self._recent if f[0] >= since - 1e-6])
            return []
        events: list[Event] = []
        self._quiet = 0 if speech else self._quiet + 1
        if speech:
            events += self._flush()  # speech again: the held silence is inside the utterance
        if speech or self._quiet * ms <= self.s.tail_ms:
            events.append(self._emit(wall, pcm))
        else:
            self._held.append((wall, pcm))
        length = self._ms + len(self._held) * ms
        if not self.gate.speaking:
            self._held.clear()  # the hang-over beyond `tail_ms` is not sent
            events.append(self._close(EndReason.PAUSE))
        elif length >= self.s.max_ms - ms or (length >= self.s.split_after_ms and not speech):
            events += self._flush()
            split = length < self.s.max_ms - ms
            events.append(self._close(EndReason.SPLIT if split else EndReason.MAX))
            self._continue = True
        return events

    def _emit(self, wall: float, pcm: bytes) -> Appended:
        self._ms += _frame(self.s)
        self._end_at = wall + _frame(self.s) / 1000
        return Appended(pcm)

    def _flush(self) -> list[Event]:
        held, self._held = self._held, []
        return [self._emit(wall, pcm) for wall, pcm in held]

    def stop(self) -> list[Event]:
        """The audio ends (stop, capture lost): close the open utterance."""
        self._recent.clear()
        self._continue = False
        self._held.clear()
        return [self._close(EndReason.STOP)] if self._open else []

    def _start(self, frames: list[tuple[float, float, bytes]]) -> list[Event]:
        frames = self._trimmed(frames)
        self._open = True
        self._quiet = 0
        self._recent.clear()
        audio = b"".join(f[2] for f in frames)
        self._ms = len(frames) * _frame(self.s)
        self._end_at = frames[-1][1] + _frame(self.s) / 1000
        return [Opened(frames[0][1], audio)]

    def _trimmed(self, frames: list[Captured]) -> list[Captured]:
        """The pre-roll without its leading room silence (the Sync API bills every second
        sent), keeping `trim_margin_ms` before the first frame that is not quiet."""
        limit = self.s.quiet_limit
        if limit <= 0:
            return frames
        loud = next((i for i, f in enumerate(frames) if not peak_below(f[2], limit)), None)
        if loud is None:
            return frames[-1:]
        keep = self.s.trim_margin_ms // _frame(self.s)
        return frames[max(0, loud - keep) :]

    def _close(self, reason: EndReason) -> Closed:
        self._open = False
        self.gate.session_ended()  # the next onset opens the next utterance
        return Closed(self._end_at, self._ms, reason, send=self._ms >= self.s.min_ms)


def _voice(g: GateSettings) -> GateSettings:
    return GateSettings(
        mode=GateMode.VOICE,
        frame_ms=g.frame_ms,
        onset_ms=g.onset_ms,
        onset_window_ms=g.onset_window_ms,
        hangover_ms=g.hangover_ms,
        idle_close_seconds=g.idle_close_seconds,
        preroll_ms=g.preroll_ms,
    )


def _frame(s: SegmentSettings) -> int:
    return s.gate.frame_ms
