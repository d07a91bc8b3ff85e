"""The state files (transcript spool, billing ledger) when the state directory misbehaves
while edgecap runs: a file deleted or replaced, a disk that fails and comes back, a file
left by an earlier run that could not be opened, and who may read them.

Real SQLite files in a temporary directory. A deleted or replaced file is really deleted or
replaced; a failing disk is a connection class that answers the way SQLite does when the
disk is full or read-only (the daemon-level tests in test_state_faults.py use real full and
read-only file systems).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from edgecap.billing.ledger import Ledger
from edgecap.billing.store import FILENAME as LEDGER
from edgecap.billing.store import LedgerStore
from edgecap.mqtt.spooldb import FILENAME as SPOOL
from edgecap.mqtt.spooldb import SqliteSpool, open_spool
from edgecap.state.health import Cause, FsFacts, RetryPlan, classify
from tests.test_spool import ack_all, make_outbox, turn

pytestmark = pytest.mark.unit

NOON = datetime(2026, 11, 21, 12, 0).timestamp()
FULL = "database or disk is full"


class Disk:
    """The disk under the state directory: `error` set, it fails the way SQLite reports it
    (new connections and writes raise `sqlite3.OperationalError(error)`)."""

    def __init__(self) -> None:
        self.error: str | None = None
        disk = self

        class Connection(sqlite3.Connection):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                disk.check("open")
                super().__init__(*args, **kwargs)

            def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
                disk.check(sql)
                return super().execute(sql, parameters)

            def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
                disk.check(sql)
                return super().executemany(sql, parameters)

        self.factory = Connection

    def check(self, sql: str) -> None:
        verb = sql.split(maxsplit=1)[0].upper()
        if self.error and verb in ("OPEN", "INSERT", "UPDATE", "DELETE", "BEGIN"):
            raise sqlite3.OperationalError(self.error)


class Mono:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Reports:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def __call__(self, part: str, line: str | None) -> None:
        self.seen.append((part, line))

    @property
    def last(self) -> str | None:
        return self.seen[-1][1]


def ids_in_file(path: Path) -> list[str]:
    """What a new process would find in the spool file."""
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT id FROM turns ORDER BY seq")]
    finally:
        db.close()


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def rm(path: Path) -> None:
    """`rm spool.sqlite3*`, as a user cleaning up would."""
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


# --- deleted or replaced while running -----------------------------------------------------


def test_spool_file_deleted_while_running_is_written_anew_with_every_undelivered_turn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    spool = open_spool(state)
    outbox, client, loop = make_outbox(spool)
    outbox.connected()
    outbox.add(*turn(1))
    outbox.add(*turn(2))  # both in flight, not acknowledged
    rm(state / SPOOL)
    with caplog.at_level(logging.WARNING):
        outbox.add(*turn(3))
    assert ids_in_file(state / SPOOL) == ["s:1", "s:2", "s:3"]  # durable again, in order
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "was deleted while edgecap ran" in warnings[0]
    assert "2 undelivered turn(s)" in warnings[0]
    assert spool.health.recreated == 1
    ack_all(outbox, client, loop)  # the rows in flight keep their meaning
    assert client.payloads == [turn(n)[2] for n in (1, 2, 3)]
    assert outbox.counters.delivered == 3
    assert ids_in_file(state / SPOOL) == []


def test_a_deleted_spool_file_is_noticed_without_a_new_turn(tmp_path: Path) -> None:
    state = tmp_path / "state"
    spool = open_spool(state)
    outbox, _, _ = make_outbox(spool)
    outbox.add(*turn(1))  # waits: not connected
    rm(state / SPOOL)
    outbox.maintain()  # the service's periodic check
    assert ids_in_file(state / SPOOL) == ["s:1"]


def test_spool_file_replaced_by_garbage_is_moved_aside_and_the_turns_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    spool = open_spool(state)
    outbox, _, _ = make_outbox(spool)
    outbox.add(*turn(1))
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a database, someone's notes" * 200)
    garbage.replace(state / SPOOL)  # another inode at the path
    outbox.add(*turn(2))
    aside = [p for p in state.iterdir() if p.name.startswith(f"{SPOOL}.damaged-")]
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"not a database")
    assert ids_in_file(state / SPOOL) == ["s:1", "s:2"]
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]  # one line
    assert warning.levelno == logging.WARNING
    assert "was replaced by another file while edgecap ran (SQLite cannot read it" in (
        warning.getMessage()
    )
    assert f"moved it to {aside[0]}" in warning.getMessage()
    assert "the 1 undelivered turn(s) it held" in warning.getMessage()


def test_ledger_file_deleted_while_running_keeps_every_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LedgerStore.open(tmp_path, Ledger(), now=NOON)
    store.session_closed("a", NOON, 30.0, 20.0, "server")
    store.session_opened("b", NOON + 60)
    rm(tmp_path / LEDGER)
    store.maintain()  # the billing guard calls it every second
    store.session_closed("b", NOON + 90, 30.0, 25.0, "server")
    store.close()
    assert "billing ledger" in caplog.text
    assert "was deleted while edgecap ran" in caplog.text
    again = Ledger()
    LedgerStore.open(tmp_path, again, now=NOON + 100).close()
    today = again.today(datetime.fromtimestamp(NOON + 100).astimezone())
    assert (today.sessions, today.billed_seconds) == (2, 60.0)


# --- a failing disk ----------------------------------------------------------------------------


def test_a_full_disk_keeps_turns_in_memory_through_the_same_window_and_counters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disk, reports = Disk(), Reports()
    spool = open_spool(tmp_path / "state", report=reports, clock=Mono(), factory=disk.factory)
    outbox, client, loop = make_outbox(spool, window=2)
    outbox.connected()
    outbox.add(*turn(1))
    disk.error = FULL
    for n in (2, 3, 4):
        outbox.add(*turn(n))
    assert not spool.durable
    assert client.payloads == [turn(n)[2] for n in (1, 2)]  # the window holds, as on disk
    ack_all(outbox, client, loop)
    ack_all(outbox, client, loop)
    assert client.payloads == [turn(n)[2] for n in (1, 2, 3, 4)]  # in order, once each
    assert (outbox.counters.spooled, outbox.counters.delivered) == (4, 4)
    assert spool.depth() == 0
    errors = logged(caplog, logging.ERROR)
    assert len(errors) == 1
    assert "cannot write: the disk is full (database or disk is full)" in errors[0]
    assert "Kept in memory from now on" in errors[0]
    assert f"Free space on the file system of {tmp_path / 'state'}" in errors[0]
    assert reports.last is not None
    assert reports.last.startswith("kept in memory: the disk is full")
    assert spool.health.payload() == {
        "durable": False,
        "fallbacks": 1,
        "recreated": 0,
        "memory_writes": 3,
    }


def test_the_disk_is_tried_again_and_gets_the_turns_kept_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state, disk, clock, reports = tmp_path / "state", Disk(), Mono(), Reports()
    spool = open_spool(state, report=reports, clock=clock, factory=disk.factory)
    outbox, client, _ = make_outbox(spool)
    outbox.add(*turn(1))
    disk.error = "attempt to write a readonly database"
    outbox.add(*turn(2))
    outbox.add(*turn(3))
    assert reports.last is not None
    assert "the file system is read-only" in reports.last
    assert ids_in_file(state / SPOOL) == ["s:1"]  # what was on disk before
    disk.error = None
    clock.now += 4
    outbox.maintain()
    assert not spool.durable  # not yet: at most one attempt every 5 s
    clock.now += 2
    with caplog.at_level(logging.INFO):
        outbox.maintain()
    assert spool.durable
    assert ids_in_file(state / SPOOL) == ["s:1", "s:2", "s:3"]
    assert reports.last is None  # the status condition is cleared
    assert "the disk works again; wrote the 3 undelivered turn(s)" in caplog.text
    outbox.add(*turn(4))
    assert ids_in_file(state / SPOOL) == ["s:1", "s:2", "s:3", "s:4"]
    outbox.connected()
    assert client.payloads == [turn(n)[2] for n in (1, 2, 3, 4)]


def test_a_disk_that_stays_full_is_retried_without_losing_what_memory_holds(
    tmp_path: Path,
) -> None:
    disk, clock = Disk(), Mono()
    spool = open_spool(tmp_path / "state", clock=clock, factory=disk.factory)
    disk.error = FULL
    spool.add(*turn(1), 1.0)
    for _ in range(3):
        clock.now += 31
        spool.maintain()
    assert not spool.durable
    assert [r.turn_id for r in spool.after(0, 10)] == ["s:1"]
    assert spool.health.fallbacks == 1  # one episode, one ERROR


def test_turns_in_memory_at_stop_are_written_if_the_disk_works_else_reported_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state, disk = tmp_path / "state", Disk()
    spool = open_spool(state, clock=Mono(), factory=disk.factory)
    disk.error = FULL
    spool.add(*turn(1), 1.0)
    disk.error = None
    spool.close()  # one more try, whatever the retry schedule
    assert ids_in_file(state / SPOOL) == ["s:1"]

    caplog.clear()
    again = open_spool(state, clock=Mono(), factory=disk.factory)
    disk.error = FULL
    again.add(*turn(2), 2.0)
    again.close()
    assert "2 undelivered turn(s) held in memory could not be written" in caplog.text


def test_a_spool_file_that_could_not_be_opened_at_start_is_adopted_not_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state, disk, clock = tmp_path / "state", Disk(), Mono()
    earlier = open_spool(state)  # a previous run left two undelivered turns
    earlier.add(*turn(1), 1.0)
    earlier.add(*turn(2), 2.0)
    earlier.close()
    disk.error = "unable to open database file"
    spool = open_spool(state, clock=clock, factory=disk.factory)  # e.g. owned by root
    assert not spool.durable
    spool.add(*turn(3), 3.0)
    disk.error = None
    clock.now += 6
    spool.maintain()
    assert spool.durable
    assert ids_in_file(state / SPOOL) == ["s:3", "s:1", "s:2"]  # none lost
    assert "held 2 undelivered turn(s) that this run had not seen" in caplog.text


def test_ledger_on_a_failing_disk_keeps_the_budget_and_writes_every_session_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disk, clock, reports = Disk(), Mono(), Reports()
    ledger = Ledger(budget_seconds=60)
    store = LedgerStore.open(tmp_path, ledger, now=NOON, clock=clock, factory=disk.factory)
    store.report_to(reports)
    store.session_closed("a", NOON, 20.0, 10.0, "server")
    disk.error = FULL
    store.session_opened("b", NOON + 30)
    store.heartbeat("b", NOON + 40)
    store.session_closed("b", NOON + 75, 45.0, 30.0, "server")
    assert not store.durable
    assert ledger.exhausted(datetime.fromtimestamp(NOON + 80).astimezone())
    errors = logged(caplog, logging.ERROR)
    assert len(errors) == 1
    assert errors[0].startswith(f"billing ledger {tmp_path / LEDGER}: cannot write")
    assert reports.last is not None
    assert store.health.memory_writes == 3
    disk.error = None
    clock.now += 5
    store.maintain()
    assert store.durable
    assert reports.last is None
    store.close()
    again = Ledger()
    LedgerStore.open(tmp_path, again, now=NOON + 100).close()
    assert again.today(datetime.fromtimestamp(NOON + 100).astimezone()).billed_seconds == 65.0


def test_a_ledger_that_could_not_be_opened_at_start_keeps_its_history(tmp_path: Path) -> None:
    earlier = LedgerStore.open(tmp_path, Ledger(), now=NOON)
    earlier.session_closed("yesterday-evening", NOON - 3600, 100.0, 50.0, "server")
    earlier.session_opened("killed", NOON - 600)  # the process died in this session
    earlier.close()
    disk, clock = Disk(), Mono()
    disk.error = "unable to open database file"
    ledger = Ledger()
    store = LedgerStore.open(tmp_path, ledger, now=NOON, clock=clock, factory=disk.factory)
    store.session_opened("now", NOON)
    disk.error = None
    clock.now += 6
    store.maintain()
    assert store.durable
    today = ledger.today(datetime.fromtimestamp(NOON).astimezone())
    assert today.sessions == 2  # the earlier one and the killed one (recovered)
    assert today.billed_seconds == 110.0  # 100 s, and the killed one: 0 s seen + 10 s
    store.session_closed("now", NOON + 50, 50.0, 40.0, "server")
    store.close()
    db = sqlite3.connect(tmp_path / LEDGER)
    found = dict(db.execute("SELECT session_id, source FROM sessions").fetchall())
    db.close()
    assert found == {"yesterday-evening": "server", "killed": "recovered", "now": "server"}


# --- who may read them ----------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_state_files_are_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    before = os.umask(umask)
    try:
        state = tmp_path / "state"
        spool = SqliteSpool(state)
        spool.add(*turn(1), 1.0)
        store = LedgerStore.open(state, Ledger(), now=NOON)
        store.session_opened("s", NOON)
        assert mode(state) == 0o700
        names = [f"{name}{suffix}" for name in (SPOOL, LEDGER) for suffix in ("", "-wal", "-shm")]
        assert {name: mode(state / name) for name in names} == dict.fromkeys(names, 0o600)
        rm(state / SPOOL)  # written anew: private too
        spool.add(*turn(2), 2.0)
        assert mode(state / SPOOL) == 0o600
        spool.close()
        store.close()
    finally:
        os.umask(before)


def test_state_files_left_readable_by_an_older_edgecap_are_tightened(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        db = sqlite3.connect(tmp_path / SPOOL)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
        assert mode(tmp_path / SPOOL) == 0o644
        spool = open_spool(tmp_path)
        assert mode(tmp_path / SPOOL) == 0o600
        assert mode(tmp_path / f"{SPOOL}-wal") == 0o600  # the older process still has it open
        db.close()
        spool.close()
    finally:
        os.umask(before)


# --- the decisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "errno_", "message", "fs", "cause"),
    [
        ("SQLITE_FULL", None, "database or disk is full", None, Cause.FULL),
        (None, 28, "No space left on device", None, Cause.FULL),
        (None, None, "database or disk is full", None, Cause.FULL),  # no error name known
        ("SQLITE_READONLY", None, "attempt to write a readonly database", None, Cause.READ_ONLY),
        (None, 30, "Read-only file system", None, Cause.READ_ONLY),
        ("SQLITE_IOERR_WRITE", None, "disk I/O error", FsFacts(read_only=True), Cause.READ_ONLY),
        ("SQLITE_IOERR_WRITE", None, "disk I/O error", FsFacts(free_bytes=10**9), Cause.IO_ERROR),
        (
            "SQLITE_CANTOPEN",
            None,
            "unable to open database file",
            FsFacts(free_bytes=0),
            Cause.FULL,
        ),
        ("SQLITE_CANTOPEN", None, "unable to open", FsFacts(writable=False), Cause.PERMISSION),
        ("SQLITE_READONLY", None, "readonly", FsFacts(writable=False), Cause.PERMISSION),
        (None, 13, "Permission denied", None, Cause.PERMISSION),
        ("SQLITE_NOTADB", None, "file is not a database", None, Cause.DAMAGED),
        ("SQLITE_BUSY", None, "database is locked", FsFacts(free_bytes=10**9), Cause.OTHER),
    ],
)
def test_the_cause_of_a_failure(
    name: str | None, errno_: int | None, message: str, fs: FsFacts | None, cause: Cause
) -> None:
    assert classify(name, errno_, message, fs) is cause


def test_the_disk_is_tried_soon_when_it_looks_usable_and_every_30_s_anyway() -> None:
    plan = RetryPlan()
    plan.attempted(0.0)
    assert not plan.may_look(4.9)
    assert plan.may_look(5.0)
    assert plan.due(5.0, looks_usable=True)
    assert not plan.due(29.9, looks_usable=False)
    assert plan.due(30.0, looks_usable=False)
    assert FsFacts(free_bytes=10**6).looks_usable
    assert not FsFacts(free_bytes=4096).looks_usable
    assert not FsFacts(read_only=True).looks_usable
