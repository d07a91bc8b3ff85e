"""Audio frames and their capture times (no I/O).

A frame is one ALSA period: `frame_ms` of mono PCM16. Its capture time is the time of its
first sample. Reads from ALSA return when a period is complete, and several periods can be
returned back to back after a scheduling hiccup, so the read time itself is jittery.
`CaptureClock` derives a smooth time from the sequence number instead, anchored at the
first read and re-anchored when the two disagree by more than a period (an overrun, a
device re-open or a clock step).
"""

from __future__ import annotations

from typing import NamedTuple


class Frame(NamedTuple):
    """One period of captured audio (immutable; a named tuple because one is built for
    every period, and that is three times cheaper than a frozen dataclass)."""

    seq: int
    """Sequence number, increasing by one per captured period (gaps mean lost periods)."""
    pcm: bytes
    """Mono signed 16-bit little-endian samples."""
    captured_at: float
    """Wall-clock time (Unix seconds) of the first sample."""
    monotonic: float
    """Monotonic time (time.monotonic()) of the first sample."""
    duration_ms: int
    """Duration of the frame in milliseconds."""


def total_ms(frames: list[Frame]) -> int:
    """Total duration of `frames` (e.g. one message)."""
    if len(frames) == 1:  # the steady state: one frame per message
        return frames[0].duration_ms
    total = 0
    for f in frames:
        total += f.duration_ms
    return total


class CaptureClock:
    """Smooth capture timestamps from period sequence numbers."""

    def __init__(self, frame_seconds: float, tolerance_seconds: float | None = None) -> None:
        self._frame_s = frame_seconds
        self._tolerance = frame_seconds if tolerance_seconds is None else tolerance_seconds
        self._anchor: tuple[int, float, float] | None = None  # seq, monotonic, wall
        self.reanchors = 0

    def reset(self) -> None:
        """Forget the anchor (after a device re-open: periods no longer follow on)."""
        self._anchor = None

    def stamp(self, seq: int, read_monotonic: float, read_wall: float) -> tuple[float, float]:
        """Return (monotonic, wall) of the first sample of period `seq`.

        `read_monotonic`/`read_wall` are the times the read of that period returned.
        """
        observed_mono = read_monotonic - self._frame_s
        observed_wall = read_wall - self._frame_s
        if self._anchor is None:
            self._anchor = (seq, observed_mono, observed_wall)
            return observed_mono, observed_wall
        a_seq, a_mono, a_wall = self._anchor
        predicted = a_mono + (seq - a_seq) * self._frame_s
        # A read can only return after its period was captured; if the prediction is later
        # than the observation we were ahead, if much earlier the stream fell behind.
        if abs(observed_mono - predicted) > self._tolerance:
            self.reanchors += 1
            self._anchor = (seq, observed_mono, observed_wall)
            return observed_mono, observed_wall
        return predicted, a_wall + (seq - a_seq) * self._frame_s
