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
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime
from pathlib import Path

from edgecap import statedb
from edgecap.ledger import HEARTBEAT_SECONDS, BilledBy, DayTotals, Ledger

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


def _local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts).astimezone()


class LedgerStore:
    """Persisted sessions feeding a `Ledger`. Use `LedgerStore.open(...)`."""

    def __init__(self, db: sqlite3.Connection, path: Path | None, ledger: Ledger) -> None:
        self._db = db
        self.path = path
        self.ledger = ledger
        self._failing = False

    @classmethod
    def open(cls, state_dir: Path | None, ledger: Ledger, *, now: float) -> LedgerStore:
        """The store in `state_dir` (None = memory only), with its sessions replayed into
        `ledger` and sessions left open by a crash closed as `recovered`."""

        def factory(path: Path | None) -> LedgerStore:
            db = statedb.connect(path, schema=_SCHEMA, version=SCHEMA_VERSION, what="ledger")
            return cls(db, path, ledger)

        store = statedb.open_in_state_dir(
            state_dir,
            FILENAME,
            factory,
            what="billing ledger",
            in_memory_means="keeping billed time in memory only: today's total and the "
            "daily budget start again from zero if edgecap restarts",
            log=log,
        )
        try:
            store._prune(now)
            store._recover(now)
            store._replay(now)
        except sqlite3.Error as exc:
            log.error("billing ledger %s: cannot read past sessions (%s)", store.path, exc)
        return store

    @property
    def durable(self) -> bool:
        return self.path is not None

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
            row = self._db.execute(
                "SELECT ended_at FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
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
        self._replay(now)

    def close(self) -> None:
        self._db.close()

    # -- internals ---------------------------------------------------------------------

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        """One committed statement. A failure (disk full, file gone) is logged once until a
        write succeeds again; the in-memory ledger keeps counting, so the budget holds."""
        try:
            self._db.execute(sql, params)
        except sqlite3.Error as exc:
            if not self._failing:
                log.error(
                    "billing ledger %s: cannot write (%s); billed time is counted in memory "
                    "only until it can",
                    self.path,
                    exc,
                )
            self._failing = True
            return
        if self._failing:
            log.info("billing ledger %s: writing again", self.path)
        self._failing = False

    def _prune(self, now: float) -> None:
        cur = self._db.execute(
            "DELETE FROM sessions WHERE COALESCE(ended_at, last_seen) < ?",
            (now - KEEP_SECONDS,),
        )
        if cur.rowcount > 0:
            log.info("billing ledger: removed %d sessions older than 13 months", cur.rowcount)

    def _recover(self, now: float) -> None:
        rows = self._db.execute(
            "SELECT session_id, started_at, last_seen FROM sessions WHERE ended_at IS NULL"
        ).fetchall()
        for session_id, started_at, last_seen in rows:
            billed = max(0.0, last_seen - started_at) + HEARTBEAT_SECONDS
            ended_at = max(last_seen, min(last_seen + HEARTBEAT_SECONDS, now))
            self._db.execute(
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

    def _replay(self, now: float) -> None:
        rows = self._db.execute(
            "SELECT ended_at, billed_seconds, speech_seconds FROM sessions "
            "WHERE ended_at IS NOT NULL AND ended_at >= ? ORDER BY ended_at",
            (now - REPLAY_SECONDS,),
        ).fetchall()
        for ended_at, billed, speech in rows:
            self.ledger.record(_local(ended_at), billed or 0.0, speech or 0.0)
