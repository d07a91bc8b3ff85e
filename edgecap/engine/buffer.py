"""The audio buffer between capture and the sessions, with replay bookkeeping (no I/O).

Capture never waits for the network: frames go into a bounded buffer and the session takes
them out when it can carry them. The buffer holds two runs of frames, oldest first:

    [ sent, not yet confirmed (history) | not yet sent (backlog) ]

A frame moves from the backlog to the history only after the WebSocket `send` returned.
The history is what the server may not have turned into a final transcript yet: it is
confirmed (dropped) up to the end of each final turn, and trimmed to a short tail while no
turn is open. When a session ends abnormally, `rewind()` turns the history back into backlog
so the next session replays the open turn from its start; after a clean `Terminate` the
server has finalized everything it got, so `confirm_all()` drops it.

When the buffer is full the oldest frame goes. Dropping history while a session is live
loses nothing yet (it was sent), so only dropped backlog counts as lost audio.

Messages are coalesced up to 1000 ms (the API accepts 50-1000 ms per message), and a
backlog is sent no faster than `rate` x real time measured from the first message of the
session, so the server's real-time check is never tripped.
"""

from __future__ import annotations

from collections import deque

from edgecap.audio.frame import Frame, total_ms

MAX_MESSAGE_MS = 1000
MIN_MESSAGE_MS = 50


class AudioBuffer:
    def __init__(self, max_ms: int, frame_ms: int) -> None:
        self._frames: deque[Frame] = deque()
        self._max_frames = max(1, max_ms // frame_ms)
        self.frame_ms = frame_ms
        self._sent = 0  # frames at the front that were sent in the current session
        self._history_start_ms = 0  # session offset of the first history frame
        self._history_ms = 0
        self._backlog_ms = 0
        self.dropped_frames = 0
        """Frames of unsent audio dropped because the buffer was full (lost audio)."""
        self.dropped_ms = 0
        self.trimmed_frames = 0
        """History frames dropped to make room while a session was live (not lost)."""
        self.held = False
        """The privacy mute: nothing more is handed out to be sent (`peek_message` is empty)."""

    @property
    def newest_seq(self) -> int | None:
        """The sequence number of the last frame added (None while empty)."""
        return self._frames[-1].seq if self._frames else None

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def max_ms(self) -> int:
        return self._max_frames * self.frame_ms

    @property
    def buffered_ms(self) -> int:
        return self._history_ms + self._backlog_ms

    @property
    def backlog_ms(self) -> int:
        """Audio waiting to be sent."""
        return self._backlog_ms

    @property
    def history_ms(self) -> int:
        """Audio sent in this session and not yet confirmed by a final turn."""
        return self._history_ms

    @property
    def sent_offset_ms(self) -> int:
        """Session offset just after the last frame sent (start of the backlog)."""
        return self._history_start_ms + self._history_ms

    def append(self, frame: Frame) -> list[Frame]:
        """Add a captured frame; returns the unsent (lost) frames dropped to make room."""
        lost: list[Frame] = []
        while len(self._frames) >= self._max_frames:
            old = self._frames.popleft()
            if self._sent:
                self._sent -= 1
                self._history_ms -= old.duration_ms
                self._history_start_ms += old.duration_ms
                self.trimmed_frames += 1
            else:
                self._backlog_ms -= old.duration_ms
                self.dropped_frames += 1
                self.dropped_ms += old.duration_ms
                lost.append(old)
        self._frames.append(frame)
        self._backlog_ms += frame.duration_ms
        return lost

    def peek_message(self, max_ms: int = MAX_MESSAGE_MS) -> list[Frame]:
        """The unsent frames of the next message (oldest first, total <= `max_ms`), without
        removing them. Empty when nothing is waiting or the first frame is longer, or while
        `held`."""
        out: list[Frame] = []
        if self.held:
            return out
        total = 0
        for i in range(self._sent, len(self._frames)):
            frame = self._frames[i]
            if total + frame.duration_ms > max_ms:
                break
            out.append(frame)
            total += frame.duration_ms
        return out

    def next_frame_ms(self) -> int | None:
        """Duration of the oldest unsent frame, or None when nothing is waiting."""
        if self.held or self._sent >= len(self._frames):
            return None
        return self._frames[self._sent].duration_ms

    def clear(self) -> int:
        """Forget every frame, sent or not (the privacy mute: nothing captured before it is
        ever sent). Only between sessions. Returns the ms dropped."""
        dropped = self.buffered_ms
        self._frames.clear()
        self._sent = self._history_ms = self._backlog_ms = self._history_start_ms = 0
        return dropped

    def mark_sent(self, count: int) -> None:
        """The next `count` unsent frames were handed to the socket: they become history."""
        for i in range(self._sent, self._sent + count):
            d = self._frames[i].duration_ms
            self._history_ms += d
            self._backlog_ms -= d
        self._sent += count

    def confirm_until(self, offset_ms: int) -> int:
        """Drop history that ends at or before session offset `offset_ms` (the end of a final
        turn: the server has transcribed it). Returns the number of frames dropped."""
        n = 0
        while self._sent and self._history_start_ms + self._frames[0].duration_ms <= offset_ms:
            self._drop_history_front()
            n += 1
        return n

    def keep_recent_history(self, keep_ms: int) -> int:
        """Trim the history to its last `keep_ms` (used while no turn is open)."""
        n = 0
        while self._sent and self._history_ms - self._frames[0].duration_ms >= keep_ms:
            self._drop_history_front()
            n += 1
        return n

    def rewind(self) -> int:
        """The session ended abnormally: the history becomes backlog again, to be replayed
        in the next session (whose offsets start at 0). Returns the ms rewound."""
        rewound = self._history_ms
        self._backlog_ms += rewound
        self._history_ms = 0
        self._sent = 0
        self._history_start_ms = 0
        return rewound

    def confirm_all(self) -> None:
        """The session ended cleanly (Termination): everything sent was processed."""
        while self._sent:
            self._drop_history_front()
        self._history_start_ms = 0

    def discard_unsent(self, keep_ms: int, before: float | None = None) -> int:
        """No session needs the oldest unsent audio (voice gating, between sessions): drop
        frames captured before monotonic time `before` and any beyond the newest `keep_ms`.
        Not counted as lost. Only while nothing is pending confirmation (no history).
        Returns the ms dropped."""
        if self._sent:
            return 0
        dropped = 0
        frames = self._frames
        while frames and (
            self._backlog_ms - frames[0].duration_ms >= keep_ms
            or (before is not None and frames[0].monotonic < before)
        ):
            d = frames.popleft().duration_ms
            self._backlog_ms -= d
            dropped += d
        return dropped

    def _drop_history_front(self) -> None:
        old = self._frames.popleft()
        self._sent -= 1
        self._history_ms -= old.duration_ms
        self._history_start_ms += old.duration_ms


def pad_message(pcm: bytes, sample_rate: int, min_ms: int = MIN_MESSAGE_MS) -> bytes:
    """PCM16 mono padded with silence to at least `min_ms` (never send a short message)."""
    need = sample_rate * min_ms // 1000 * 2
    return pcm + bytes(need - len(pcm)) if len(pcm) < need else pcm


class CatchUpPacer:
    """Allows `rate` x real time of audio since the first message, plus `burst_s`.

    The server measures real time from the arrival of the first audio message, so the
    allowance starts at the first `sent()` (or at `start` when given): before that only
    `first_s` (default `burst_s`) may go out. What the first message carries beyond
    `burst_s` is not counted against the later allowance: a session opened by a voice onset
    sends its pre-roll at once and then paces any further backlog exactly as before (the
    server's check is then "rate x real time + first_s").
    """

    def __init__(
        self,
        rate: float,
        start: float | None = None,
        burst_s: float = 0.1,
        first_s: float | None = None,
    ) -> None:
        if rate < 1.0:
            raise ValueError("catch-up rate must be at least 1.0 x real time")
        self.rate = rate
        self.start = start
        self.burst_s = burst_s
        self.first_s = burst_s if first_s is None else max(burst_s, first_s)
        self.sent_s = 0.0

    def allowance(self, now: float) -> float:
        """Seconds of audio that may be sent at `now`."""
        elapsed = 0.0 if self.start is None else max(0.0, now - self.start)
        return elapsed * self.rate + self.burst_s - self.sent_s

    def delay(self, now: float, duration_s: float) -> float:
        """Seconds to wait before a message of `duration_s` may be sent (0 = now)."""
        if self.start is None:
            return 0.0 if duration_s <= self.first_s + 1e-9 else float("inf")
        return max(0.0, (duration_s - self.allowance(now)) / self.rate)

    def sent(self, duration_s: float, now: float | None = None) -> None:
        if self.start is None:
            self.start = now if now is not None else 0.0
            duration_s = min(duration_s, self.burst_s)  # the first message's excess is free
        self.sent_s += duration_s


def plan_message(
    buffer: AudioBuffer, pacer: CatchUpPacer, now: float, *, draining: bool = False
) -> tuple[list[Frame], float]:
    """What the sender does next: `(frames, 0)` send them now; `([], s)` wait `s` seconds
    for the pacer; `([], 0)` nothing (or too little) to send: wait for audio.

    The first message of a session is at most the pacer's `first_s` (the server's clock
    starts when it arrives). Later, everything waiting goes out in one message of up to 1000 ms
    once the pacer allows it, unless the wait would overflow the buffer: then whatever the
    pacer allows right now is sent (at least one frame), so a full buffer drains at
    `rate` - 1 without dropping more audio. A message is never shorter than 50 ms; when
    `draining` (before Terminate) a short tail is sent anyway and the caller pads it.
    """
    first = buffer.next_frame_ms()
    if first is None:
        return [], 0.0
    if pacer.start is None:
        frames = buffer.peek_message(max(round(pacer.first_s * 1000), first))
        ms = total_ms(frames)
    else:
        frames = buffer.peek_message(MAX_MESSAGE_MS) or buffer.peek_message(first)
        ms = total_ms(frames)
        wait = pacer.delay(now, ms / 1000)
        if wait > 1e-6:  # (not a rounding error)
            room_s = (buffer.max_ms - buffer.backlog_ms - first) / 1000
            if wait < room_s:
                return [], wait  # time to gather a large message
            frames = buffer.peek_message(int(pacer.allowance(now) * 1000 + 1e-3))
            if not frames:
                return [], max(1e-3, pacer.delay(now, first / 1000))
            ms = total_ms(frames)
    if ms < MIN_MESSAGE_MS and not draining:
        return [], 0.0
    return frames, 0.0
