"""SQLite files in the state directory, one at a time: opened in WAL mode with synchronous
commits, created private (the directory 0700, the file and its `-wal` and `-shm` 0600,
whatever the umask), and what their file system says when a write fails (`fs_facts`).
The keeper of a file (watching, moving to memory and back) is `statedb.StateDb`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from edgecap.state.health import FsFacts

DIR_MODE = 0o700
FILE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm")


def connect(
    path: Path | None,
    *,
    schema: str,
    version: int,
    what: str,
    factory: type[sqlite3.Connection] = sqlite3.Connection,
) -> sqlite3.Connection:
    """An autocommit connection to `path` (None = in memory) with `schema` applied.

    Raises `sqlite3.DatabaseError` when the file is not a database, or was written by a newer
    edgecap (`PRAGMA user_version` above `version`).
    """
    db = sqlite3.connect(
        ":memory:" if path is None else str(path),
        isolation_level=None,  # autocommit; transactions are explicit
        check_same_thread=False,  # created on one thread, used on the loop thread
        factory=sqlite3.Connection if path is None else factory,
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


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN ... COMMIT, rolled back on any error (if SQLite has not already done so)."""
    db.execute("BEGIN")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def make_private(path: Path) -> None:
    """Create `path` 0600 if it is missing, whatever the umask; tighten it and its `-wal`
    and `-shm` to 0600 when this process owns them and they are looser."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        _tighten(os.fstat(fd), lambda mode: os.fchmod(fd, mode))
    finally:
        os.close(fd)
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            _tighten(side.stat(), side.chmod)


def _tighten(st: os.stat_result, chmod: Callable[[int], object]) -> None:
    if st.st_uid == os.geteuid() and st.st_mode & 0o777 != FILE_MODE:
        chmod(FILE_MODE)


def identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def fs_facts(directory: Path, path: Path) -> FsFacts | None:
    """What the file system of `directory` says (its nearest existing ancestor when it is
    gone), and whether `path` can be opened for writing; None if it cannot be asked."""
    try:
        where = directory
        while not where.is_dir() and where != where.parent:
            where = where.parent
        st = os.statvfs(where)
        read_only = bool(st.f_flag & os.ST_RDONLY)
        if not read_only and path.exists():
            try:  # a file system the kernel made read-only may not say so in statvfs
                os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
            except OSError as exc:
                read_only = exc.errno == errno.EROFS
        writable = os.access(where, os.W_OK | os.X_OK)
    except OSError:
        return None
    return FsFacts(read_only=read_only, free_bytes=st.f_bavail * st.f_frsize, writable=writable)


def write_atomic(path: Path, text: str) -> None:
    """Replace the small file `path` (private, 0600) atomically: after a crash it holds the
    old or the new text, never a mix. OSError when it cannot be written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
