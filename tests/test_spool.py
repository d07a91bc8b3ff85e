"""The durable transcript spool and its delivery bookkeeping, without a broker.

The MQTT client is replaced by a recorder of what was handed to it; PUBACKs are fed by
hand; the spool is a real SQLite file in a temporary directory.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from edgecap.mqtt.outbox import TurnOutbox
from edgecap.mqtt.spool import DeliveryWindow, SpoolBounds
from edgecap.mqtt.spooldb import FILENAME, SqliteSpool, open_spool

pytestmark = pytest.mark.unit

TOPIC = "edgecap/dev/transcript"
WEEK = 7 * 24 * 3600.0


class FakeClient:
    """Records (topic, payload) handed over; returns increasing message ids."""

    def __init__(self, spool: SqliteSpool | None = None) -> None:
        self.sent: list[tuple[int, bytes]] = []
        self.next_mid = 1
        self.refuse = False
        self.spool = spool
        self.depth_when_sent: list[int] = []

    def __call__(self, topic: str, payload: bytes) -> int | None:
        if self.refuse:
            return None
        if self.spool is not None:
            self.depth_when_sent.append(self.spool.depth())
        mid = self.next_mid
        self.next_mid += 1
        self.sent.append((mid, payload))
        return mid

    @property
    def payloads(self) -> list[bytes]:
        return [p for _, p in self.sent]


class Loop:
    """Stands in for loop.call_soon: callbacks run when `run()` is called."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def __call__(self, callback: Callable[[], None]) -> None:
        self.pending.append(callback)

    def run(self) -> None:
        while self.pending:
            self.pending.pop(0)()


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_outbox(
    spool: SqliteSpool,
    *,
    window: int = 20,
    max_turns: int = 10_000,
    clock: Clock | None = None,
) -> tuple[TurnOutbox, FakeClient, Loop]:
    client, loop = FakeClient(spool), Loop()
    outbox = TurnOutbox(
        spool,
        SpoolBounds(max_turns, WEEK),
        client,
        schedule=loop,
        window=window,
        clock=clock or Clock(),
    )
    outbox.open()
    return outbox, client, loop


def turn(n: int) -> tuple[str, str, bytes]:
    return f"s:{n}", TOPIC, f'{{"id":"s:{n}"}}'.encode()


def ack_all(outbox: TurnOutbox, client: FakeClient, loop: Loop) -> None:
    for mid, _ in list(client.sent):
        outbox.acked(mid)
    loop.run()


@pytest.fixture
def spool(tmp_path: Path) -> SqliteSpool:
    return open_spool(tmp_path / "state")


# --- the window (pure bookkeeping) ----------------------------------------------------------


def test_window_hands_out_nothing_while_disconnected() -> None:
    window = DeliveryWindow(3)
    assert window.room() == 0
    window.connection_up()
    assert window.room() == 3
    window.handed(1, mid=10)
    window.handed(2, mid=11)
    assert window.room() == 1
    assert window.acked(10) == 1
    assert window.acked(99) is None  # not a transcript (availability, stats)
    assert window.room() == 2


def test_window_holds_new_rows_until_resent_ones_are_acknowledged() -> None:
    window = DeliveryWindow(5)
    window.connection_up()
    window.handed(1, mid=1)
    window.handed(2, mid=2)
    window.connection_down()
    window.connection_up()
    assert window.room() == 0  # the client is re-sending rows 1 and 2 first
    window.acked(1)
    assert window.room() == 0
    window.acked(2)
    assert window.room() == 5


def test_window_refuses_rows_out_of_order() -> None:
    window = DeliveryWindow(5)
    window.handed(4, mid=1)
    with pytest.raises(ValueError, match="out of order"):
        window.handed(3, mid=2)


def test_bounds() -> None:
    bounds = SpoolBounds(max_turns=10, max_age_seconds=60)
    assert bounds.excess(12) == 2
    assert bounds.excess(3) == 0
    assert bounds.cutoff(1000.0) == 940.0


# --- the outbox over a real spool file ------------------------------------------------------


def test_turn_is_on_disk_before_it_is_handed_to_the_client(spool: SqliteSpool) -> None:
    outbox, client, _ = make_outbox(spool)
    outbox.connected()
    outbox.add(*turn(1))
    assert client.payloads == [turn(1)[2]]
    assert client.depth_when_sent == [1]  # committed first, then published


def test_acknowledged_turns_leave_the_spool(spool: SqliteSpool) -> None:
    outbox, client, loop = make_outbox(spool)
    outbox.connected()
    for n in range(3):
        outbox.add(*turn(n))
    assert spool.depth() == 3
    ack_all(outbox, client, loop)
    assert spool.depth() == 0
    assert outbox.counters.delivered == 3


def test_turns_wait_while_disconnected_and_go_out_in_order(spool: SqliteSpool) -> None:
    outbox, client, _ = make_outbox(spool)
    for n in range(4):
        outbox.add(*turn(n))
    assert client.sent == []
    outbox.connected()
    assert client.payloads == [turn(n)[2] for n in range(4)]


def test_at_most_window_turns_in_flight(spool: SqliteSpool) -> None:
    outbox, client, loop = make_outbox(spool, window=2)
    outbox.connected()
    for n in range(5):
        outbox.add(*turn(n))
    assert len(client.sent) == 2
    outbox.acked(client.sent[0][0])
    loop.run()
    assert client.payloads == [turn(n)[2] for n in range(3)]
    ack_all(outbox, client, loop)
    ack_all(outbox, client, loop)
    assert client.payloads == [turn(n)[2] for n in range(5)]
    assert spool.depth() == 0


def test_after_a_reconnect_newer_turns_follow_the_resent_ones(spool: SqliteSpool) -> None:
    outbox, client, loop = make_outbox(spool)
    outbox.connected()
    outbox.add(*turn(1))
    outbox.disconnected()  # turn 1 is in the client; it re-sends it after reconnecting
    outbox.add(*turn(2))
    outbox.connected()
    outbox.add(*turn(3))
    assert client.payloads == [turn(1)[2]]  # 2 and 3 wait for turn 1's PUBACK
    outbox.acked(client.sent[0][0])
    loop.run()
    assert client.payloads == [turn(n)[2] for n in (1, 2, 3)]


def revised(n: int, revision: int) -> tuple[str, str, bytes]:
    return f"s:{n}", TOPIC, f'{{"id":"s:{n}","revision":{revision}}}'.encode()


def test_a_revision_of_a_waiting_turn_takes_its_place(spool: SqliteSpool) -> None:
    outbox, client, loop = make_outbox(spool)
    for n in range(3):
        outbox.add(*turn(n))
    outbox.add(*revised(1, 1), revision=1)  # turn 1 was never handed to the client
    outbox.add(*revised(1, 2), revision=2)
    assert spool.depth() == 3
    assert outbox.counters.replaced == 2
    outbox.connected()
    assert client.payloads == [turn(0)[2], revised(1, 2)[2], turn(2)[2]]  # in turn order
    ack_all(outbox, client, loop)
    assert spool.depth() == 0
    assert outbox.counters.delivered == 3


def test_a_revision_of_a_turn_already_handed_over_follows_it(spool: SqliteSpool) -> None:
    outbox, client, loop = make_outbox(spool)
    outbox.connected()
    outbox.add(*turn(1))
    outbox.disconnected()  # turn 1 is in the client: it re-sends it, the old payload
    outbox.add(*turn(2))
    outbox.add(*revised(1, 1), revision=1)
    assert spool.depth() == 3
    assert outbox.counters.replaced == 0
    outbox.connected()
    outbox.acked(client.sent[0][0])
    loop.run()
    assert client.payloads == [turn(1)[2], turn(2)[2], revised(1, 1)[2]]
    ack_all(outbox, client, loop)
    assert spool.depth() == 0

    outbox.add(*revised(2, 1), revision=1)  # turn 2 was delivered and deleted long ago
    assert client.payloads[-1] == revised(2, 1)[2]


def test_a_revision_survives_a_restart_in_place_of_its_turn(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first, _, _ = make_outbox(open_spool(state))  # the broker is down
    first.add(*turn(1))
    first.add(*turn(2))
    first.add(*revised(1, 1), revision=1)
    first.close()  # killed

    second, client, _ = make_outbox(open_spool(state))
    second.connected()
    assert client.payloads == [revised(1, 1)[2], turn(2)[2]]


def test_undelivered_turns_are_published_first_after_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first, client, loop = make_outbox(open_spool(state))
    first.connected()
    for n in range(3):
        first.add(*turn(n))
    first.acked(client.sent[0][0])  # only turn 0 reached the broker
    loop.run()
    first.close()  # like a kill: turns 1 and 2 were never acknowledged

    second, client2, _ = make_outbox(open_spool(state))
    second.add(*turn(3))
    second.connected()
    assert client2.payloads == [turn(n)[2] for n in (1, 2, 3)]


def test_full_spool_evicts_the_oldest_and_reports_it(
    spool: SqliteSpool, caplog: pytest.LogCaptureFixture
) -> None:
    outbox, client, _ = make_outbox(spool, max_turns=3)
    with caplog.at_level(logging.WARNING):
        for n in range(5):
            outbox.add(*turn(n))
    assert outbox.counters.evicted == 2
    assert spool.depth() == 3
    assert "evicted 1 undelivered turn(s) because the spool is full" in caplog.text
    assert "s:0" in caplog.text
    assert "s:1" in caplog.text
    outbox.connected()
    assert client.payloads == [turn(n)[2] for n in (2, 3, 4)]


def test_old_turns_are_evicted(spool: SqliteSpool, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outbox, _, _ = make_outbox(spool, clock=clock)
    outbox.add(*turn(0))
    clock.now += WEEK - 1
    outbox.add(*turn(1))
    clock.now += 2
    with caplog.at_level(logging.WARNING):
        outbox.enforce_bounds()
    assert outbox.counters.evicted == 1
    assert "because they are too old" in caplog.text
    assert [r.turn_id for r in spool.after(0, 10)] == ["s:1"]


def test_refused_publish_is_retried_on_the_next_event(spool: SqliteSpool) -> None:
    outbox, client, _ = make_outbox(spool)
    outbox.connected()
    client.refuse = True
    outbox.add(*turn(1))
    assert client.sent == []
    client.refuse = False
    outbox.add(*turn(2))
    assert client.payloads == [turn(1)[2], turn(2)[2]]


def test_turn_refused_by_the_broker_is_dropped_not_retried_forever(
    spool: SqliteSpool, caplog: pytest.LogCaptureFixture
) -> None:
    outbox, client, loop = make_outbox(spool)
    outbox.connected()
    outbox.add(*turn(1))
    outbox.add(*turn(2))
    outbox.acked(client.sent[0][0], ok=False, reason="Quota exceeded")
    outbox.acked(client.sent[1][0])
    loop.run()
    assert spool.depth() == 0
    assert (outbox.counters.rejected, outbox.counters.delivered) == (1, 1)
    assert "Quota exceeded" in caplog.text


def test_drained_callback_waits_for_the_last_puback(spool: SqliteSpool) -> None:
    outbox, client, loop = make_outbox(spool)
    outbox.connected()
    outbox.add(*turn(1))
    drained: list[bool] = []
    outbox.on_drained(lambda: drained.append(True))
    assert drained == []
    ack_all(outbox, client, loop)
    assert drained == [True]


# --- the spool file ---------------------------------------------------------------------


def test_spool_file_is_sqlite_in_wal_mode(tmp_path: Path) -> None:
    spool = open_spool(tmp_path / "state")
    spool.add("a:0", TOPIC, b"{}", 1.0)
    spool.close()
    db = sqlite3.connect(tmp_path / "state" / FILENAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT id FROM turns").fetchall() == [("a:0",)]
    db.close()


def test_row_numbers_never_go_back_after_deletes(spool: SqliteSpool) -> None:
    first = spool.add("a:0", TOPIC, b"0", 1.0)
    spool.delete([first])
    assert spool.add("a:1", TOPIC, b"1", 2.0) > first


def test_damaged_spool_file_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / FILENAME).write_bytes(b"this is not a database" * 100)
    spool = open_spool(state)
    assert spool.durable
    spool.add("a:0", TOPIC, b"{}", 1.0)
    assert [p.name for p in state.iterdir() if ".damaged-" in p.name]
    assert "was unreadable" in caplog.text


def test_unusable_state_dir_falls_back_to_memory_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    spool = open_spool(blocker / "state")  # cannot create a directory inside a file
    assert not spool.durable
    spool.add("a:0", TOPIC, b"{}", 1.0)
    assert spool.depth() == 1
    assert "Kept in memory from now on" in caplog.text
