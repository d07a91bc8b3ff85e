"""Audio gaps: captured audio dropped because an outage outlasted the replay buffer (no I/O).

Frames dropped in a row form one gap; it is closed (and reported) when a frame is kept
again. A closed gap waits for the next published turn that ends after it started, which
carries its length as `gap_before_ms`, so a subscriber knows words may be missing there.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecap.audio.frame import Frame, total_ms


@dataclass(frozen=True, slots=True)
class Gap:
    ms: int
    frames: int
    started_at: float
    """Capture time (Unix seconds) of the first dropped frame."""
    ended_at: float
    """Capture time just after the last dropped frame."""


class GapTracker:
    def __init__(self) -> None:
        self._open: Gap | None = None
        self.pending: list[Gap] = []
        """Closed gaps not yet attached to a turn."""

    @property
    def open(self) -> bool:
        return self._open is not None

    def dropped(self, frames: list[Frame]) -> bool:
        """Frames were dropped; returns True when this starts a new gap."""
        if not frames:
            return False
        ms = total_ms(frames)
        end = frames[-1].captured_at + frames[-1].duration_ms / 1000
        gap = self._open
        if gap is None:
            self._open = Gap(ms, len(frames), frames[0].captured_at, end)
            return True
        self._open = Gap(gap.ms + ms, gap.frames + len(frames), gap.started_at, end)
        return False

    def kept(self) -> Gap | None:
        """A frame was kept: the open gap (if any) is over; returns it."""
        gap, self._open = self._open, None
        if gap is not None:
            self.pending.append(gap)
        return gap

    def attach(self, turn_ended_at: float | None) -> int | None:
        """The ms of pending gaps that precede a turn ending at `turn_ended_at` (capture
        time), which are then considered reported; None when there are none."""
        due = [g for g in self.pending if turn_ended_at is None or g.started_at <= turn_ended_at]
        if not due:
            return None
        self.pending = [g for g in self.pending if g not in due]
        return sum(g.ms for g in due)
