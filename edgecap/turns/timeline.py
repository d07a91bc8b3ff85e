"""Map a session's audio offsets back to capture times (no I/O).

The server gives word times in milliseconds from the start of the audio it received in
this session. The session records each frame it sends with its capture time; consecutive
frames form one segment, and a new segment starts only where the capture times jump
(frames dropped, device re-opened), so memory stays small for hours-long sessions.
"""

from __future__ import annotations

import bisect


class AudioTimeline:
    def __init__(self, tolerance_seconds: float = 0.005) -> None:
        self._offsets: list[int] = []  # segment start, ms of session audio
        self._walls: list[float] = []  # capture wall time at that offset
        self._sent_ms = 0
        self._tolerance = tolerance_seconds

    @property
    def sent_ms(self) -> int:
        """Milliseconds of audio sent in this session."""
        return self._sent_ms

    @property
    def segments(self) -> int:
        return len(self._offsets)

    def append(self, duration_ms: int, captured_at: float) -> None:
        """Record that `duration_ms` of audio captured at `captured_at` was sent next."""
        if self._offsets:
            predicted = self._walls[-1] + (self._sent_ms - self._offsets[-1]) / 1000
            if abs(predicted - captured_at) > self._tolerance:
                self._offsets.append(self._sent_ms)
                self._walls.append(captured_at)
        else:
            self._offsets.append(0)
            self._walls.append(captured_at)
        self._sent_ms += duration_ms

    def wall_at(self, offset_ms: int) -> float | None:
        """Capture time of the audio at `offset_ms`, or None before any audio was sent."""
        if not self._offsets:
            return None
        i = max(bisect.bisect_right(self._offsets, offset_ms) - 1, 0)
        return self._walls[i] + (offset_ms - self._offsets[i]) / 1000
