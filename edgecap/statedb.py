"""SQLite files in the state directory: how they are opened, repaired and, failing that, kept
in memory. Shared by the transcript spool (`mqtt/spooldb.py`) and the billing ledger
(`ledger_store.py`).

Every file is in WAL mode with `synchronous=FULL`, so a committed write survives a kill and a
power cut. A file SQLite cannot read is moved aside (`<name>.damaged-<unix time>`) and a new
one started; a state directory that cannot be used at all falls back to an in-memory
database, with one ERROR line saying what is lost.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

STATE_DIR_HINT = "Make state_dir writable (systemd: StateDirectory=edgecap)"


def connect(path: Path | None, *, schema: str, version: int, what: str) -> sqlite3.Connection:
    """An autocommit connection to `path` (None = in memory) with `schema` applied.

    Raises `sqlite3.DatabaseError` when the file is not a database, or was written by a newer
    edgecap (`PRAGMA user_version` above `version`).
    """
    db = sqlite3.connect(
        ":memory:" if path is None else str(path),
        isolation_level=None,  # autocommit; transactions are explicit
        check_same_thread=False,  # created on one thread, used on the loop thread
    )
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=2000")
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found > version:
            raise sqlite3.DatabaseError(
                f"{what} schema {found} is newer than this edgecap understands"
            )
        db.executescript(schema)
        db.execute(f"PRAGMA user_version={version}")
    except sqlite3.Error:
        db.close()
        raise
    return db


def open_in_state_dir(
    state_dir: Path | None,
    filename: str,
    factory: Callable[[Path | None], T],
    *,
    what: str,
    in_memory_means: str,
    log: logging.Logger,
) -> T:
    """`factory(state_dir / filename)`, creating the directory if needed.

    `state_dir=None` asks for memory on purpose (no log line). A damaged file is moved aside
    and logged; when the directory cannot be used, `factory(None)` is returned and one ERROR
    line names the file, the cause and `in_memory_means` (what the user loses).
    """
    if state_dir is None:
        return factory(None)
    path = state_dir / filename
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        try:
            return factory(path)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) or not path.exists():
                raise
            aside = path.with_name(f"{filename}.damaged-{int(time.time())}")
            path.rename(aside)
            for suffix in ("-wal", "-shm"):
                path.with_name(filename + suffix).unlink(missing_ok=True)
            log.error(
                "%s %s was unreadable (%s); moved it to %s and started a new one",
                what,
                path,
                exc,
                aside,
            )
            return factory(path)
    except (OSError, sqlite3.Error) as exc:
        log.error(
            "cannot use the %s %s (%s); %s. %s", what, path, exc, in_memory_means, STATE_DIR_HINT
        )
        return factory(None)
