"""The transcript spool on disk: one SQLite file in the state directory (WAL).

Rows keep the order turns were finalized in (`seq` never goes back, even after deletes).
Each insert is committed with `synchronous=FULL`, so a turn that was spooled survives a
kill and a power cut. The file is watched and, while the disk fails, kept in memory
(`statedb.StateDb`): row numbers never change meaning, so what is in flight stays valid.
All calls come from one thread (the event loop); the bookkeeping of what to send and what
to evict lives in `spool.py`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from edgecap.state import db as statedb
from edgecap.state.files import transaction
from edgecap.state.health import StoreHealth

log = logging.getLogger(__name__)

FILENAME = "spool.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    spooled_at REAL NOT NULL
);
"""

SPEC = statedb.DbSpec(
    filename=FILENAME,
    schema=_SCHEMA,
    version=SCHEMA_VERSION,
    part="spool",
    what="transcript spool",
    rows="undelivered turn(s)",
    count_sql="SELECT COUNT(*) FROM turns",
    in_memory_means="transcripts are still delivered, but those not yet delivered are lost "
    "if edgecap stops before the disk works again",
)


@dataclass(frozen=True, slots=True)
class SpooledTurn:
    seq: int
    turn_id: str
    topic: str
    payload: bytes
    spooled_at: float


class SqliteSpool:
    """The spool table in `state_dir` (or, while the disk fails, in memory)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        report: statedb.Report | None = None,
        clock: Callable[[], float] = time.monotonic,
        factory: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> None:
        self.db = statedb.StateDb(
            state_dir, SPEC, log=log, report=report, adopt=_adopt, clock=clock, factory=factory
        )
        self.path = self.db.path

    @property
    def durable(self) -> bool:
        """Whether the spool is on disk now (False while the disk fails)."""
        return self.db.durable

    @property
    def health(self) -> StoreHealth:
        return self.db.health

    # -- writes ------------------------------------------------------------------------

    def add(self, turn_id: str, topic: str, payload: bytes, now: float) -> int:
        """Commit one turn; returns its row number."""

        def insert(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO turns (id, topic, payload, spooled_at) VALUES (?, ?, ?, ?)",
                (turn_id, topic, payload, now),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

        return self.db.write(insert, record=True)

    def replace_waiting(self, turn_id: str, payload: bytes, after: int) -> int:
        """Give the rows of `turn_id` after row `after` (those not handed to the client yet)
        the newer `payload`, in place (a speaker revision of a turn still waiting); returns
        how many rows it changed."""

        def update(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "UPDATE turns SET payload = ? WHERE id = ? AND seq > ?", (payload, turn_id, after)
            )
            return max(cur.rowcount, 0)

        return self.db.write(update, record=True)

    def delete(self, seqs: Iterable[int]) -> int:
        """Delete delivered rows in one transaction; returns how many existed."""
        rows = [(s,) for s in seqs]
        if not rows:
            return 0

        def delete(db: sqlite3.Connection) -> int:
            with transaction(db):
                cur = db.executemany("DELETE FROM turns WHERE seq = ?", rows)
            return max(cur.rowcount, 0)

        return self.db.write(delete)

    def evict_oldest(self, count: int) -> list[str]:
        """Delete the `count` oldest rows; returns their turn ids, oldest first."""
        if count <= 0:
            return []
        return self._evict(
            "DELETE FROM turns WHERE seq IN (SELECT seq FROM turns ORDER BY seq LIMIT ?) "
            "RETURNING seq, id",
            count,
        )

    def evict_older_than(self, cutoff: float) -> list[str]:
        """Delete rows spooled before `cutoff` (wall clock); returns their turn ids."""
        return self._evict("DELETE FROM turns WHERE spooled_at < ? RETURNING seq, id", cutoff)

    def _evict(self, sql: str, arg: float) -> list[str]:
        rows = self.db.write(lambda db: db.execute(sql, (arg,)).fetchall())
        return [turn_id for _, turn_id in sorted(rows)]

    def maintain(self) -> None:
        """The file still there? The disk back? (cheap; called periodically)"""
        self.db.maintain()

    # -- reads -------------------------------------------------------------------------

    def after(self, seq: int, limit: int) -> list[SpooledTurn]:
        """Up to `limit` rows after row `seq`, in order."""
        rows = self.db.read(
            lambda db: db.execute(
                "SELECT seq, id, topic, payload, spooled_at FROM turns WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        )
        return [SpooledTurn(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    def depth(self) -> int:
        count: int = self.db.read(lambda db: db.execute("SELECT COUNT(*) FROM turns").fetchone()[0])
        return count

    def oldest(self) -> SpooledTurn | None:
        rows = self.after(0, 1)
        return rows[0] if rows else None

    def close(self) -> None:
        self.db.close()


def _adopt(found: sqlite3.Connection, db: sqlite3.Connection) -> int:
    """Turns in a spool file this run had not read, appended after the current ones (turns
    already held are skipped by id: a copy of this run's rows, or an earlier revision of a
    turn whose newer revision this run holds)."""
    held = {row[0] for row in db.execute("SELECT id FROM turns")}
    rows = [
        row
        for row in found.execute(
            "SELECT id, topic, payload, spooled_at FROM turns ORDER BY seq"
        ).fetchall()
        if row[0] not in held
    ]
    db.executemany("INSERT INTO turns (id, topic, payload, spooled_at) VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def open_spool(
    state_dir: Path,
    *,
    report: statedb.Report | None = None,
    clock: Callable[[], float] = time.monotonic,
    factory: type[sqlite3.Connection] = sqlite3.Connection,
) -> SqliteSpool:
    """The spool in `state_dir`, created if needed.

    A damaged file is moved aside (`spool.sqlite3.damaged-<time>`) and a new one started.
    When the directory cannot be used, the spool is kept in memory, reported (an ERROR
    line, the `spool` status condition) and the disk is retried: transcripts are still
    delivered, but those not yet delivered do not survive a restart until it works again.
    """
    return SqliteSpool(state_dir, report=report, clock=clock, factory=factory)
