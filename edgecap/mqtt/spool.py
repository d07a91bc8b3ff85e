"""Delivery bookkeeping for the durable transcript spool (no I/O).

Every final turn is committed to the spool (SQLite, see `spooldb.py`) before it is handed to
the MQTT client, and deleted when the broker acknowledges it (PUBACK). This module decides
what the spool must evict (`SpoolBounds`) and which rows are handed to the client and not
yet acknowledged (`DeliveryWindow`); it never touches a file or a socket.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpoolBounds:
    """How much the spool keeps: at most `max_turns` rows, none older than `max_age_seconds`."""

    max_turns: int
    max_age_seconds: float

    def excess(self, depth: int) -> int:
        """How many of the oldest rows must go so that `depth` fits."""
        return max(0, depth - self.max_turns)

    def cutoff(self, now: float) -> float:
        """Rows spooled before this wall-clock time are too old."""
        return now - self.max_age_seconds


class DeliveryWindow:
    """Spooled rows handed to the MQTT client and not yet acknowledged.

    Rows are handed over in spool order, at most `capacity` at a time, and only while the
    client is connected. When the connection drops, the client keeps what it holds and
    re-sends it, in order, right after reconnecting; those rows become *stale* and newer
    rows wait until every stale one is acknowledged. So the broker receives the rows in
    spool order even across reconnects (a re-sent row may arrive twice, with the same id).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.connected = False
        self.last_seq = 0  # the highest spool row handed over so far
        self._by_mid: dict[int, int] = {}
        self._stale: set[int] = set()

    @property
    def in_flight(self) -> int:
        return len(self._by_mid)

    @property
    def waiting_for_resend(self) -> int:
        """Rows from before the last reconnect that the client is re-sending."""
        return len(self._stale)

    def room(self) -> int:
        """How many more rows may be handed to the client now."""
        if not self.connected or self._stale:
            return 0
        return self.capacity - len(self._by_mid)

    def handed(self, seq: int, mid: int) -> None:
        """Row `seq` was handed to the client as message `mid`."""
        if seq <= self.last_seq:
            raise ValueError(f"row {seq} handed out of order (after {self.last_seq})")
        self._by_mid[mid] = seq
        self.last_seq = seq

    def acked(self, mid: int) -> int | None:
        """The broker acknowledged `mid`: the spool row to delete, or None if not ours."""
        self._stale.discard(mid)
        return self._by_mid.pop(mid, None)

    def connection_up(self) -> None:
        self.connected = True

    def connection_down(self) -> None:
        self.connected = False
        self._stale = set(self._by_mid)

    def holds(self, seq: int) -> bool:
        return seq in self._by_mid.values()
