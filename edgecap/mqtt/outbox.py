"""The transcript outbox: spool first, then publish, delete on PUBACK.

Runs on the event loop only (the MQTT client's callbacks are marshalled to it), so the
spool file and the delivery window are never shared between threads. At-least-once:
a turn leaves the spool only when the broker has acknowledged it; after a reconnect or a
restart it may be sent again, always with the same `id`. While the disk fails the spool
lives in memory (`statedb.StateDb`), and every turn still goes through the same window
and counters.

A speaker revision of a turn (the same `id`, a higher `revision`) that is still waiting in
the spool takes the place of the earlier payload there, so only the newest is sent; once
the earlier one was handed to the client, the revision is spooled after it and follows it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgecap.mqtt.spool import DeliveryWindow, SpoolBounds
from edgecap.mqtt.spooldb import SqliteSpool

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 20  # paho's default max in-flight messages

# Hand `payload` to the MQTT client at QoS 1; the message id, or None if it was refused.
PublishQos1 = Callable[[str, bytes], int | None]
Schedule = Callable[[Callable[[], None]], object]


@dataclass
class OutboxCounters:
    spooled: int = 0
    delivered: int = 0
    evicted: int = 0
    rejected: int = 0
    replaced: int = 0
    """Revisions that took the place of an earlier payload still waiting in the spool."""


class TurnOutbox:
    def __init__(
        self,
        spool: SqliteSpool,
        bounds: SpoolBounds,
        publish: PublishQos1,
        *,
        schedule: Schedule,
        window: int = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self.bounds = bounds
        self._publish = publish
        self._schedule = schedule
        self._clock = clock
        self.window = DeliveryWindow(window)
        self.counters = OutboxCounters()
        self._acks: list[tuple[int, bool, str]] = []
        self._flush_scheduled = False
        self._drained: list[Callable[[], None]] = []
        self._closed = False

    # -- what the daemon calls -----------------------------------------------------------

    def open(self) -> None:
        """Apply the bounds to what a previous run left, and say what will be re-sent."""
        self.enforce_bounds()
        depth = self.spool.depth()
        oldest = self.spool.oldest()
        if depth and oldest is not None:
            age = max(0.0, self._clock() - oldest.spooled_at)
            log.info(
                "transcript spool holds %d undelivered turn(s) from a previous run "
                "(oldest %s, %.0f s old); publishing them first, in order",
                depth,
                oldest.turn_id,
                age,
            )

    def add(self, turn_id: str, topic: str, payload: bytes, *, revision: int = 0) -> None:
        """Commit a final turn to the spool, then publish it when the window allows.

        `revision` above 0: the payload is a revision of turn `turn_id`, published before;
        it replaces that turn's payload where it still waits in the spool, and is spooled
        after it (as a turn of its own) when the earlier one has been handed over."""
        if self._closed:
            log.error("turn %s arrived after the MQTT outbox was closed; not published", turn_id)
            return
        try:  # a failing disk moves the spool to memory; this fails only if memory does
            if revision and self.spool.replace_waiting(turn_id, payload, self.window.last_seq):
                self.counters.replaced += 1
                return
            self.spool.add(turn_id, topic, payload, self._clock())
        except sqlite3.Error as exc:
            log.error("turn %s could not be spooled, even in memory (%s); lost", turn_id, exc)
            return
        self.counters.spooled += 1
        excess = self.bounds.excess(self.spool.depth())
        if excess:
            self._evicted(self.spool.evict_oldest(excess), "the spool is full")
        self.pump()

    def enforce_bounds(self) -> None:
        """Evict what is too old or too much (called at start and periodically)."""
        self._evicted(
            self.spool.evict_older_than(self.bounds.cutoff(self._clock())), "they are too old"
        )
        excess = self.bounds.excess(self.spool.depth())
        self._evicted(self.spool.evict_oldest(excess), "the spool is full")

    @property
    def depth(self) -> int:
        return self.spool.depth()

    def maintain(self) -> None:
        """Periodically: is the spool file still there, does the disk work again?"""
        if not self._closed:
            self.spool.maintain()
            self.pump()  # turns adopted from a file found on disk, if any

    # -- MQTT client events (on the loop) ------------------------------------------------

    def connected(self) -> None:
        if self._closed:
            return
        self.window.connection_up()
        self.pump()

    def disconnected(self) -> None:
        self.window.connection_down()

    def acked(self, mid: int, ok: bool = True, reason: str = "") -> None:
        """PUBACK for `mid`; rows are deleted in batches, once per loop iteration."""
        if self._closed:
            return
        self._acks.append((mid, ok, reason))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._schedule(self._flush_acks)

    def on_drained(self, callback: Callable[[], None]) -> None:
        """Call `callback` once nothing handed to the client awaits a PUBACK."""
        if self.window.in_flight == 0:
            callback()
        else:
            self._drained.append(callback)

    # -- internals -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop using the spool (what is in it stays for the next start)."""
        if not self._closed:
            self._closed = True
            self.spool.close()

    def _flush_acks(self) -> None:
        self._flush_scheduled = False
        if self._closed:
            return
        acks, self._acks = self._acks, []
        done: list[int] = []
        for mid, ok, reason in acks:
            seq = self.window.acked(mid)
            if seq is None:
                continue  # availability, status, stats: not spooled
            done.append(seq)
            if ok:
                self.counters.delivered += 1
            else:
                # MQTT 5 brokers may refuse a message (quota, authorization). Re-sending it
                # would block every later turn behind it, so it is dropped and reported.
                self.counters.rejected += 1
                log.error("the broker refused a transcript (row %d): %s; dropped", seq, reason)
        self.spool.delete(done)
        self.pump()
        if self.window.in_flight == 0:
            callbacks, self._drained = self._drained, []
            for callback in callbacks:
                callback()

    def pump(self) -> None:
        """Hand the next spooled rows to the client, in order, as far as the window allows."""
        room = self.window.room()
        if room <= 0 or self._closed:
            return
        for row in self.spool.after(self.window.last_seq, room):
            mid = self._publish(row.topic, row.payload)
            if mid is None:
                return  # the client refused it (queue full); retried on the next event
            self.window.handed(row.seq, mid)

    def _evicted(self, ids: list[str], why: str) -> None:
        if not ids:
            return
        self.counters.evicted += len(ids)
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        log.warning(
            "transcript spool: evicted %d undelivered turn(s) because %s (bounds: %d turns, "
            "%.0f h): %s",
            len(ids),
            why,
            self.bounds.max_turns,
            self.bounds.max_age_seconds / 3600,
            shown,
        )
