"""The pending utterances of the Sync pipeline: what waits to be (re)sent, in order, within
bounds (pure: times come in as arguments).

Every utterance is admitted here when it ends (its audio is already on disk by then: the
adapter in `sync.store`), and leaves when a transcript came back (`done`) or when it cannot
be sent: a refusal no retry can fix (400/413/415), or the bounds (count, bytes, age) make
room for newer speech, oldest first. Only the oldest is sent (retries go in order, so the
turns arrive in the order they were spoken); after a failure it waits (`failed`): the
server's `Retry-After` when it gave one, else a doubling back-off up to `retry_max_seconds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class DropReason(StrEnum):
    FULL = "full"  # over the count or byte bound: the oldest made room
    AGE = "age"  # older than the age bound
    REFUSED = "refused"  # the server refused it for good (400/413/415)


@dataclass(frozen=True, slots=True)
class PendingBounds:
    max_count: int = 200
    max_bytes: int = 50_000_000
    max_age_seconds: float = 86_400.0
    retry_min_seconds: float = 1.0
    retry_max_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class PendingItem:
    key: str
    """Sorts in capture order (the file name in the state directory)."""
    session_id: str
    turn_order: int
    started_at: float
    """Capture time (wall clock) of the first sample."""
    ended_at: float
    size_bytes: int
    audio_seconds: float
    attempts: int = 0
    due_at: float = 0.0
    """Not tried again before this (the clock `failed` was given)."""


@dataclass(frozen=True, slots=True)
class Dropped:
    item: PendingItem
    reason: DropReason


@dataclass
class PendingQueue:
    bounds: PendingBounds = field(default_factory=PendingBounds)
    items: list[PendingItem] = field(default_factory=list)
    dropped: dict[DropReason, int] = field(default_factory=lambda: dict.fromkeys(DropReason, 0))
    dropped_seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def bytes(self) -> int:
        return sum(i.size_bytes for i in self.items)

    def add(self, item: PendingItem, now: float) -> list[Dropped]:
        """Admit an utterance that just ended (`now`: wall clock, as its capture times);
        what had to go to keep the bounds."""
        self.items.append(item)
        self.items.sort(key=lambda i: i.key)
        return self.expire(now) + self._fit()

    def expire(self, now: float) -> list[Dropped]:
        """Drop what is older than the age bound (by its capture time)."""
        limit = now - self.bounds.max_age_seconds
        old = [i for i in self.items if i.ended_at < limit]
        return [self._drop(i, DropReason.AGE) for i in old]

    def _fit(self) -> list[Dropped]:
        gone: list[Dropped] = []
        while len(self.items) > 1 and (
            len(self.items) > self.bounds.max_count or self.bytes > self.bounds.max_bytes
        ):
            gone.append(self._drop(self.items[0], DropReason.FULL))
        return gone

    def head(self) -> PendingItem | None:
        return self.items[0] if self.items else None

    def wait(self, now: float) -> float | None:
        """Seconds until the oldest may be sent (0: now; None: nothing pending)."""
        first = self.head()
        return None if first is None else max(0.0, first.due_at - now)

    def failed(self, key: str, now: float, retry_after: float | None = None) -> float:
        """The send of `key` failed (a network error, 401/429/5xx): its delay. `now` is the
        clock `wait` is asked with (the runner's monotonic clock)."""
        item = self._find(key)
        if item is None:
            return 0.0
        b = self.bounds
        if retry_after is not None:
            delay = max(0.0, retry_after)
        else:
            delay = min(b.retry_max_seconds, b.retry_min_seconds * 2 ** min(item.attempts, 20))
        self._replace(replace(item, attempts=item.attempts + 1, due_at=now + delay))
        return delay

    def done(self, key: str) -> PendingItem | None:
        item = self._find(key)
        if item is not None:
            self.items.remove(item)
        return item

    def refused(self, key: str) -> Dropped | None:
        item = self._find(key)
        return None if item is None else self._drop(item, DropReason.REFUSED)

    def summary(self) -> dict[str, object]:
        """For `stats` (and `status` while something waits)."""
        oldest = self.head()
        return {
            "pending": self.count,
            "pending_bytes": self.bytes,
            "oldest_started_at": None if oldest is None else oldest.started_at,
            "dropped": {r.value: n for r, n in self.dropped.items()},
            "dropped_seconds": round(self.dropped_seconds, 3),
        }

    def _find(self, key: str) -> PendingItem | None:
        return next((i for i in self.items if i.key == key), None)

    def _replace(self, item: PendingItem) -> None:
        self.items = [item if i.key == item.key else i for i in self.items]

    def _drop(self, item: PendingItem, reason: DropReason) -> Dropped:
        self.items.remove(item)
        self.dropped[reason] += 1
        self.dropped_seconds += item.audio_seconds
        return Dropped(item, reason)
