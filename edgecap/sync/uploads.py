"""One utterance on its way to the Sync API (the runner's bookkeeping, no I/O of its own):
its audio as captured, and, when it is uploaded while the person speaks, the queue that
feeds the POST body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from edgecap.sync.pending import PendingItem


class LiveBody:
    """The body of a POST, fed frame by frame; `end()` finishes it."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.ended = False

    def feed(self, audio: bytes) -> None:
        if not self.ended:
            self._queue.put_nowait(audio)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self._queue.put_nowait(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                return
            yield chunk


@dataclass
class Utterance:
    key: str
    turn_order: int
    started_at: float
    audio: bytearray
    live: LiveBody | None = None
    task: asyncio.Task[None] | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    item: PendingItem | None = None
    """Set when it closed and is pending (None after close: too short, not sent)."""
    ended_at: float | None = None
