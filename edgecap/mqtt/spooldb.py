"""The transcript spool on disk: one SQLite file in the state directory (WAL).

Rows keep the order turns were finalized in (`seq` never goes back, even after deletes).
Each insert is committed with `synchronous=FULL`, so a turn that was spooled survives a
kill and a power cut. All calls come from one thread (the event loop); the bookkeeping of
what to send and what to evict lives in `spool.py`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgecap import statedb

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


@dataclass(frozen=True, slots=True)
class SpooledTurn:
    seq: int
    turn_id: str
    topic: str
    payload: bytes
    spooled_at: float


class SqliteSpool:
    """The spool table. `path=None` keeps it in memory (tests, or no writable state dir)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db = statedb.connect(path, schema=_SCHEMA, version=SCHEMA_VERSION, what="spool")

    @property
    def durable(self) -> bool:
        return self.path is not None

    # -- writes ------------------------------------------------------------------------

    def add(self, turn_id: str, topic: str, payload: bytes, now: float) -> int:
        """Commit one turn; returns its row number."""
        cur = self._db.execute(
            "INSERT INTO turns (id, topic, payload, spooled_at) VALUES (?, ?, ?, ?)",
            (turn_id, topic, payload, now),
        )
        seq = cur.lastrowid
        assert seq is not None
        return seq

    def delete(self, seqs: Iterable[int]) -> int:
        """Delete delivered rows in one transaction; returns how many existed."""
        rows = [(s,) for s in seqs]
        if not rows:
            return 0
        self._db.execute("BEGIN")
        try:
            cur = self._db.executemany("DELETE FROM turns WHERE seq = ?", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            raise
        return max(cur.rowcount, 0)

    def evict_oldest(self, count: int) -> list[str]:
        """Delete the `count` oldest rows; returns their turn ids, oldest first."""
        if count <= 0:
            return []
        rows = self._db.execute(
            "DELETE FROM turns WHERE seq IN (SELECT seq FROM turns ORDER BY seq LIMIT ?) "
            "RETURNING seq, id",
            (count,),
        ).fetchall()
        return [turn_id for _, turn_id in sorted(rows)]

    def evict_older_than(self, cutoff: float) -> list[str]:
        """Delete rows spooled before `cutoff` (wall clock); returns their turn ids."""
        rows = self._db.execute(
            "DELETE FROM turns WHERE spooled_at < ? RETURNING seq, id", (cutoff,)
        ).fetchall()
        return [turn_id for _, turn_id in sorted(rows)]

    # -- reads -------------------------------------------------------------------------

    def after(self, seq: int, limit: int) -> list[SpooledTurn]:
        """Up to `limit` rows after row `seq`, in order."""
        rows = self._db.execute(
            "SELECT seq, id, topic, payload, spooled_at FROM turns WHERE seq > ? "
            "ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [SpooledTurn(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    def depth(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
        return count

    def oldest(self) -> SpooledTurn | None:
        rows = self.after(0, 1)
        return rows[0] if rows else None

    def close(self) -> None:
        self._db.close()


def open_spool(state_dir: Path) -> SqliteSpool:
    """The spool in `state_dir`, created if needed.

    A damaged file is moved aside (`spool.sqlite3.damaged-<time>`) and a new one started.
    When the directory cannot be used, the spool is kept in memory and that is logged as
    an error: transcripts are still delivered, but do not survive a restart.
    """
    return statedb.open_in_state_dir(
        state_dir,
        FILENAME,
        SqliteSpool,
        what="transcript spool",
        in_memory_means="keeping transcripts in memory only: "
        "turns not yet delivered are lost if edgecap stops",
        log=log,
    )
