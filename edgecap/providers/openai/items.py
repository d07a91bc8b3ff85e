"""The items of one OpenAI transcription session, released in order (no I/O).

Each committed piece of audio is a conversation item (`item_id`). Its transcription's
deltas and its `completed` (or `failed`) come asynchronously, and OpenAI does not promise
that completions of different items arrive in order: the order is the commit order
(`input_audio_buffer.committed.previous_item_id`). `ItemLedger` keeps that order:

- an item gets its `turn_order` when it is first seen (speech started, a delta, the commit
  or the completion), counting up from 0, so partials and the final share one number and
  the number never changes within the session;
- committed items form a chain; a completed (or failed) item is released only when every
  item before it in the chain is released, so finals come out in commit order;
- bounded waiting: once `MAX_WAITING` later items are done while the head still waits, or
  the head's audio ended `STALE_MS` of sent audio ago, the head is given up (abandoned) and
  the rest go on; if it completes after all, it is released at once (late, out of order,
  never lost). An item seen but never committed is given up when a later item is committed
  (commits come in order, so it never will be);
- a completion for an item never seen is still released, after the known ones.

Memory is bounded: at most `MAX_ITEMS` unreleased items (the oldest beyond are forgotten)
and the last `KEEP_RELEASED` released ids (a repeated completion is ignored).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edgecap.providers.assemblyai.limits import MAX_TEXT_CHARS, MAX_TURN_ORDER
from edgecap.providers.turn import ProtocolError

MAX_WAITING = 3
"""Later items done while the head still waits before the head is given up."""
STALE_MS = 30_000
"""Sent audio after an item's end (or its commit) without its completion: given up."""
STALE_OPEN_MS = 120_000
"""Sent audio after the start of speech that was never committed: given up."""
MAX_ITEMS = 256
KEEP_RELEASED = 512


@dataclass(slots=True)
class Item:
    item_id: str
    turn_order: int
    start_ms: int | None = None
    end_ms: int | None = None
    text: str = ""
    """The deltas so far (cut at `MAX_TEXT_CHARS`)."""
    text_cut: bool = False
    committed: bool = False
    done: bool = False
    failed: bool = False
    final_text: str = ""
    confidence: float | None = None
    truncated: bool = False
    repairs: tuple[str, ...] = ()
    abandoned: bool = False


class ItemLedger:
    def __init__(self) -> None:
        self._items: dict[str, Item] = {}  # unreleased, in the order first seen
        self._chain: list[str] = []  # committed or completed, unreleased, in commit order
        self._released: set[str] = set()
        self._released_order: deque[str] = deque()
        self._next_order = 0

    # -- what the session asks ----------------------------------------------------------

    @property
    def open(self) -> bool:
        """An item is in progress: its speech started (server turn detection) or it was
        committed, and it is neither released nor given up. Deltas alone do not count: in
        manual mode they may be noise the local gate did not call speech, which is never
        committed."""
        return any(
            not item.abandoned and (item.committed or item.done or item.start_ms is not None)
            for item in self._items.values()
        )

    def unfinished(self) -> Item | None:
        """The earliest item in progress that has text (deltas), if any."""
        for item in self._items.values():
            if not item.abandoned and not item.done and item.text:
                return item
        return None

    def see(self, item_id: str) -> Item | None:
        """The item (new ones get the next `turn_order`); None when already released."""
        if item_id in self._released:
            return None
        item = self._items.get(item_id)
        if item is None:
            if self._next_order > MAX_TURN_ORDER:
                raise ProtocolError(f"more than {MAX_TURN_ORDER} items in one session")
            item = Item(item_id, self._next_order)
            self._next_order += 1
            self._items[item_id] = item
            self._forget_oldest()
        return item

    # -- what the server says -----------------------------------------------------------

    def delta(self, item_id: str, delta: str) -> Item | None:
        """A piece of an item's text; the item (None: already final, nothing to show)."""
        item = self.see(item_id)
        if item is None or item.done:
            return None
        room = MAX_TEXT_CHARS - len(item.text)
        if len(delta) > room:
            item.text_cut = True
        item.text += delta[: max(0, room)]
        return item

    def commit(self, item_id: str, previous_item_id: str | None) -> list[Item]:
        item = self.see(item_id)
        if item is None or item.committed:
            return []
        item.committed = True
        item.abandoned = False
        for other in self._items.values():  # seen earlier, never committed: never will be
            if not other.committed and other.turn_order < item.turn_order:
                other.abandoned = other.abandoned or other.item_id not in self._chain
        if item_id not in self._chain:
            if previous_item_id in self._chain:
                self._chain.insert(self._chain.index(previous_item_id) + 1, item_id)
            else:
                self._chain.append(item_id)
        return self._release()

    def complete(
        self,
        item_id: str,
        text: str,
        *,
        failed: bool = False,
        confidence: float | None = None,
        truncated: bool = False,
        repairs: tuple[str, ...] = (),
    ) -> list[Item]:
        """The item's transcription ended (`failed`: without text); the items released now,
        in order."""
        item = self.see(item_id)
        if item is None or item.done:
            return []  # a repeat
        item.done, item.failed, item.final_text = True, failed, text
        item.confidence, item.truncated, item.repairs = confidence, truncated, repairs
        if item.abandoned and item_id not in self._chain:  # given up earlier: late, not lost
            self._finish(item)
            return [item, *self._release()]
        if item_id not in self._chain:
            self._chain.append(item_id)  # completed without a commit seen: after the known
        return self._release()

    def expire(self, sent_ms: int) -> list[Item]:
        """Give up items whose audio ended long ago (in sent audio) without a completion."""
        for item in self._items.values():
            if item.done or item.abandoned:
                continue
            if item.end_ms is not None:
                stale = sent_ms - item.end_ms > STALE_MS
            else:
                stale = item.start_ms is not None and sent_ms - item.start_ms > STALE_OPEN_MS
            if stale:
                item.abandoned = True
                if item.item_id in self._chain:
                    self._chain.remove(item.item_id)
        return self._release()

    # -- internals ----------------------------------------------------------------------

    def _release(self) -> list[Item]:
        out: list[Item] = []
        while self._chain:
            head = self._items[self._chain[0]]
            if head.done:
                self._chain.pop(0)
                self._finish(head)
                out.append(head)
                continue
            if sum(self._items[i].done for i in self._chain[1:]) >= MAX_WAITING:
                self._chain.pop(0)
                head.abandoned = True
                continue
            break
        return out

    def _finish(self, item: Item) -> None:
        del self._items[item.item_id]
        self._released.add(item.item_id)
        self._released_order.append(item.item_id)
        if len(self._released_order) > KEEP_RELEASED:
            self._released.discard(self._released_order.popleft())

    def _forget_oldest(self) -> None:
        while len(self._items) > MAX_ITEMS:
            oldest = next(iter(self._items))
            del self._items[oldest]
            if oldest in self._chain:
                self._chain.remove(oldest)


__all__ = ["MAX_WAITING", "STALE_MS", "Item", "ItemLedger"]
