"""The billing ledger on disk: one row per streaming session in `ledger.sqlite3` (WAL).

A row is written when a session opens, its `last_seen` is refreshed every
`HEARTBEAT_SECONDS` while it streams, and it is closed with the billed seconds when the
session ends. Every write is committed (`synchronous=FULL`) before the call returns, so a
kill -9 or a power cut right after it keeps it. A row still open when the store is next
opened belongs to a daemon that died mid-session: it is closed with an over-estimate
(`last_seen - started_at + HEARTBEAT_SECONDS`, source `recovered`) so the budget is never
overrun because of a crash.

Totals live in the pure `Ledger` (ledger.py): on open, every closed row of the last two
months is replayed into it by the time it ended, so billing days follow the reset time
configured now, not the one in force when the row was written. All calls come from one
thread (the event loop).

The file is watched and, while the disk fails, kept in memory (`statedb.StateDb`): a
deleted file is written anew, a failed write lands in memory and reaches the disk when it
works again, so no billed second is lost while edgecap runs.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from edgecap.billing.ledger import HEARTBEAT_SECONDS, BilledBy, DayTotals, Ledger
from edgecap.state import db as statedb
from edgecap.state.health import StoreHealth

log = logging.getLogger(__name__)

FILENAME = "ledger.sqlite3"
SCHEMA_VERSION = 1
REPLAY_SECONDS = 63 * 86400  # this month and the previous one, whatever the reset time
KEEP_SECONDS = 400 * 86400  # about 13 months

SOURCES: tuple[BilledBy, ...] = ("server", "local", "recovered")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    ended_at REAL,
    billed_seconds REAL,
    speech_seconds REAL NOT NULL DEFAULT 0,
    source TEXT
);
CREATE INDEX IF NOT EXISTS sessions_ended_at ON sessions (ended_at);
"""
_ALL = "SELECT session_id, started_at, last_seen, ended_at, billed_seconds, speech_seconds, \
source FROM sessions"
_INSERT_ALL = "INSERT INTO sessions (session_id, started_at, last_seen, ended_at, \
billed_seconds, speech_seconds, source) VALUES (?, ?, ?, ?, ?, ?, ?)"

SPEC = statedb.DbSpec(
    filename=FILENAME,
    schema=_SCHEMA,
    version=SCHEMA_VERSION,
    part="ledger",
    what="billing ledger",
    rows="session(s)",
    count_sql="SELECT COUNT(*) FROM sessions",
    in_memory_means="billed time still counts against the budget, but this run's sessions "
    "are missing from the totals after a restart unless the disk works again first",
)


def _local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts).astimezone()


class LedgerStore:
    """Persisted sessions feeding a `Ledger`. Use `LedgerStore.open(...)`."""

    def __init__(
        self,
        state_dir: Path,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.monotonic,
        factory: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> None:
        self.ledger = ledger
        self.db = statedb.StateDb(
            state_dir, SPEC, log=log, adopt=self._adopt, clock=clock, factory=factory
        )
        self.path = self.db.path

    @classmethod
    def open(
        cls,
        state_dir: Path,
        ledger: Ledger,
        *,
        now: float,
        clock: Callable[[], float] = time.monotonic,
        factory: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> LedgerStore:
        """The store in `state_dir`, with its sessions replayed into `ledger` and sessions
        left open by a crash closed as `recovered`."""
        store = cls(state_dir, ledger, clock=clock, factory=factory)
        try:
            store.db.write(lambda db: store._prune(now, db))
            store.db.write(lambda db: store._recover(now, db))
            store.db.read(lambda db: store._replay(now, db))
        except sqlite3.Error as exc:
            log.error("billing ledger %s: cannot read past sessions (%s)", store.path, exc)
        return store

    @property
    def durable(self) -> bool:
        """Whether the ledger is on disk now (False while the disk fails)."""
        return self.db.durable

    @property
    def health(self) -> StoreHealth:
        return self.db.health

    def report_to(self, report: statedb.Report) -> None:
        """Report the ledger's condition ("ledger": kept in memory, or None) to `report`."""
        self.db.report_to(report)

    def maintain(self) -> None:
        """The file still there? The disk back? (cheap; called every second)"""
        self.db.maintain()

    # -- the daemon's calls ------------------------------------------------------------

    def session_opened(self, session_id: str, now: float) -> None:
        """A session started billing (call it when the WebSocket is open)."""
        self._write(
            "INSERT INTO sessions (session_id, started_at, last_seen) VALUES (?, ?, ?) "
            "ON CONFLICT (session_id) DO NOTHING",
            (session_id, now, now),
        )

    def heartbeat(self, session_id: str, now: float, speech_seconds: float | None = None) -> None:
        """The session is still open at `now` (every `HEARTBEAT_SECONDS`); `speech_seconds`
        so far, when given, is kept for a recovery after a crash."""
        self._write(
            "UPDATE sessions SET last_seen = MAX(last_seen, ?), "
            "speech_seconds = COALESCE(?, speech_seconds) "
            "WHERE session_id = ? AND ended_at IS NULL",
            (now, speech_seconds, session_id),
        )

    def session_closed(
        self,
        session_id: str,
        now: float,
        billed_seconds: float,
        speech_seconds: float,
        source: BilledBy,
    ) -> DayTotals:
        """Persist the session's billed time, then add it to the ledger; today's totals.

        A session that was never `session_opened` is recorded too (started `billed_seconds`
        before `now`). A session closed twice is counted once (logged as a warning).
        """
        if source not in SOURCES:
            raise ValueError(f"unknown ledger source {source!r}")
        billed = max(0.0, billed_seconds)
        speech = max(0.0, speech_seconds)
        try:
            row = self.db.read(
                lambda db: db.execute(
                    "SELECT ended_at FROM sessions WHERE session_id = ?", (session_id,)
                ).fetchone()
            )
        except sqlite3.Error:
            row = None  # the write below reports it
        if row is not None and row[0] is not None:
            log.warning(
                "billing ledger: session %s was already closed; not counted again", session_id
            )
            return self.ledger.today(_local(now))
        self._write(
            "INSERT INTO sessions (session_id, started_at, last_seen, ended_at, billed_seconds, "
            "speech_seconds, source) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (session_id) DO UPDATE SET last_seen = excluded.last_seen, "
            "ended_at = excluded.ended_at, billed_seconds = excluded.billed_seconds, "
            "speech_seconds = excluded.speech_seconds, source = excluded.source",
            (session_id, now - billed, now, now, billed, speech, source),
        )
        return self.ledger.record(_local(now), billed, speech)

    def recount(self, now: float) -> None:
        """The reset time changed (config reload): count the stored sessions into the same
        ledger again, on the new billing days."""
        self.ledger.days.clear()
        self.db.read(lambda db: self._replay(now, db))

    def close(self) -> None:
        self.db.close()

    # -- internals ---------------------------------------------------------------------

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        """One committed statement; a failing disk moves the ledger to memory (`StateDb`),
        so this fails only if memory does. The in-memory `Ledger` keeps counting anyway."""
        try:
            self.db.write(lambda db: db.execute(sql, params), record=True)
        except sqlite3.Error as exc:
            log.error("billing ledger: cannot record a session, even in memory (%s)", exc)

    def _adopt(self, found: sqlite3.Connection, db: sqlite3.Connection) -> int:
        """Sessions in a ledger file this run had not read (it could not open it at start):
        added, those a dead process left open recovered, and the totals counted again."""
        held = {row[0] for row in db.execute("SELECT session_id FROM sessions")}
        rows = [row for row in found.execute(_ALL).fetchall() if row[0] not in held]
        db.executemany(_INSERT_ALL, rows)
        now = time.time()
        self._recover(now, db, only={row[0] for row in rows})
        self.ledger.days.clear()
        self._replay(now, db)
        return len(rows)

    def _prune(self, now: float, db: sqlite3.Connection) -> None:
        cur = db.execute(
            "DELETE FROM sessions WHERE COALESCE(ended_at, last_seen) < ?",
            (now - KEEP_SECONDS,),
        )
        if cur.rowcount > 0:
            log.info("billing ledger: removed %d sessions older than 13 months", cur.rowcount)

    def _recover(self, now: float, db: sqlite3.Connection, only: set[str] | None = None) -> None:
        rows = db.execute(
            "SELECT session_id, started_at, last_seen FROM sessions WHERE ended_at IS NULL"
        ).fetchall()
        for session_id, started_at, last_seen in rows:
            if only is not None and session_id not in only:
                continue  # this run's open session
            billed = max(0.0, last_seen - started_at) + HEARTBEAT_SECONDS
            ended_at = max(last_seen, min(last_seen + HEARTBEAT_SECONDS, now))
            db.execute(
                "UPDATE sessions SET ended_at = ?, billed_seconds = ?, source = 'recovered' "
                "WHERE session_id = ?",
                (ended_at, billed, session_id),
            )
            log.warning(
                "billing ledger: session %s was still open when edgecap stopped (crash or "
                "kill); counting %.1f billed seconds for it (last seen %.0f s after it "
                "started, plus %.0f s)",
                session_id,
                billed,
                last_seen - started_at,
                HEARTBEAT_SECONDS,
            )

    def _replay(self, now: float, db: sqlite3.Connection) -> None:
        rows = db.execute(
            "SELECT ended_at, billed_seconds, speech_seconds FROM sessions "
            "WHERE ended_at IS NOT NULL AND ended_at >= ? ORDER BY ended_at",
            (now - REPLAY_SECONDS,),
        ).fetchall()
        for ended_at, billed, speech in rows:
            self.ledger.record(_local(ended_at), billed or 0.0, speech or 0.0)
