"""The audio buffer between capture and the session, and the catch-up pacer (no I/O).

Capture never waits for the network: frames go into a bounded buffer, and the sender takes
them out when a session can carry them. When the buffer is full the oldest frame is
dropped and counted. Messages are coalesced up to 1000 ms (the API accepts 50-1000 ms per
message), and a backlog is sent no faster than `rate` x real time measured from the start
of the session, so the server's real-time check is never tripped.
"""

from __future__ import annotations

from collections import deque

from edgecap.audio.frame import Frame

MAX_MESSAGE_MS = 1000


class AudioBuffer:
    def __init__(self, max_ms: int, frame_ms: int) -> None:
        self._frames: deque[Frame] = deque()
        self._max_frames = max(1, max_ms // frame_ms)
        self.frame_ms = frame_ms
        self.dropped_frames = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def buffered_ms(self) -> int:
        return len(self._frames) * self.frame_ms

    def append(self, frame: Frame) -> int:
        """Add a frame; returns how many old frames were dropped to make room."""
        dropped = 0
        while len(self._frames) >= self._max_frames:
            self._frames.popleft()
            dropped += 1
        self._frames.append(frame)
        self.dropped_frames += dropped
        return dropped

    def peek_message(self, max_ms: int = MAX_MESSAGE_MS) -> list[Frame]:
        """The frames of the next message (oldest first), without removing them."""
        n = min(len(self._frames), max(1, max_ms // self.frame_ms))
        return [self._frames[i] for i in range(n)]

    def consume(self, count: int) -> None:
        """Remove `count` frames that were sent."""
        for _ in range(count):
            self._frames.popleft()


class CatchUpPacer:
    """Allows `rate` x real time of audio since `start`, plus `burst_s`."""

    def __init__(self, rate: float, start: float, burst_s: float = 0.05) -> None:
        if rate < 1.0:
            raise ValueError("catch-up rate must be at least 1.0 x real time")
        self.rate = rate
        self.start = start
        self.burst_s = burst_s
        self.sent_s = 0.0

    def delay(self, now: float, duration_s: float) -> float:
        """Seconds to wait before a message of `duration_s` may be sent (0 = now)."""
        allowed = (now - self.start) * self.rate + self.burst_s
        excess = self.sent_s + duration_s - allowed
        return max(0.0, excess / self.rate)

    def sent(self, duration_s: float) -> None:
        self.sent_s += duration_s
