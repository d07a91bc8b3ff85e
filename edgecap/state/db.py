"""SQLite files in the state directory: how they are watched, repaired and, when the disk
fails, kept in memory until it works again. Shared by the transcript spool
(`mqtt/spooldb.py`) and the billing ledger (`ledger_store.py`).

Every file is in WAL mode with `synchronous=FULL`, so a committed write survives a kill and a
power cut, and is private (`statefile.py`). `StateDb` keeps one such file open and:

- before each write (one `stat()`) and on `maintain()`: a file deleted or replaced while
  edgecap runs is written anew with everything the open connection still holds (a file
  SQLite cannot read is first moved aside, `<name>.damaged-<unix time>`); one WARNING;
- when a write, a read or the open fails (disk full, read-only, permissions, I/O error): a
  copy of the data moves to memory and the write goes there, so callers carry on as before;
  one ERROR (cause and remedy) and a status condition (`report`). The disk is tried again
  on `maintain()` and before writes (`statehealth.RetryPlan`); once it works the data is
  written back, the condition cleared and one INFO logged;
- a file found on disk that edgecap did not write in this run (it could not open it at
  start, or it was swapped in) is not overwritten: its rows are adopted first (`adopt`).

Row numbers and all tables move with the data (SQLite's backup API), so nothing a caller
holds (a spool row in flight) changes meaning.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from edgecap.state.files import (
    DIR_MODE,
    SIDE_FILES,
    connect,
    fs_facts,
    identity,
    make_private,
)
from edgecap.state.health import (
    Cause,
    FsFacts,
    RetryPlan,
    StoreHealth,
    cause_text,
    classify,
    remedy,
)

T = TypeVar("T")

# (part, line): the store's status condition; None when it is on disk again.
Report = Callable[[str, str | None], None]
# Rows of a file edgecap did not write in this run -> the current data; returns how many.
Adopt = Callable[[sqlite3.Connection, sqlite3.Connection], int]


@dataclass(frozen=True, slots=True)
class DbSpec:
    filename: str
    schema: str
    version: int
    part: str
    """The status condition's key: "spool", "ledger"."""
    what: str
    """For log lines: "transcript spool"."""
    rows: str
    """What `count_sql` counts, for log lines: "undelivered turn(s)"."""
    count_sql: str
    in_memory_means: str
    """What the user risks while the data is in memory only."""


def _storage_failure(exc: sqlite3.Error) -> bool:
    """The disk or the file failed (not a bug in a statement)."""
    return type(exc) in (sqlite3.OperationalError, sqlite3.DatabaseError)


def _usable(fs: FsFacts | None) -> bool:
    return fs is not None and fs.looks_usable


def _describe(exc: BaseException, fs: FsFacts | None) -> tuple[Cause, str]:
    name = getattr(exc, "sqlite_errorname", None)
    number = exc.errno if isinstance(exc, OSError) else None
    error = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        error = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return classify(name, number, str(exc), fs), error


class StateDb:
    """One SQLite file in `state_dir`, or its copy in memory while the disk fails."""

    def __init__(
        self,
        state_dir: Path,
        spec: DbSpec,
        *,
        log: logging.Logger,
        report: Report | None = None,
        adopt: Adopt | None = None,
        clock: Callable[[], float] = time.monotonic,
        factory: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> None:
        self.spec = spec
        self.dir = state_dir
        self.path = state_dir / spec.filename
        self.health = StoreHealth()
        self._log, self._report, self._adopt = log, report, adopt
        self._clock, self._factory = clock, factory
        self._retry = RetryPlan()
        self._identity: tuple[int, int] | None = None  # the file open now, or last open
        self._on_disk = False
        self._since = 0.0  # when the data moved to memory (clock)
        self._condition: str | None = None
        self._aside: str | None = None  # a file moved aside quietly, for the caller's line
        try:
            self._db = self._open_file()
        except (OSError, sqlite3.Error) as exc:
            self._fall_back(exc, "cannot open it", self._memory())
        else:
            self._on_disk = True
        self._set_condition(self._condition, force=True)

    @property
    def durable(self) -> bool:
        """Whether committed writes are on disk now."""
        return self._on_disk

    # -- what the stores call ----------------------------------------------------------

    def write(self, fn: Callable[[sqlite3.Connection], T], *, record: bool = False) -> T:
        """`fn(connection)`, committed; on a disk failure, again on the copy in memory.
        `record`: count it in `health.memory_writes` when it lands in memory."""
        self.maintain()
        try:
            result = fn(self._db)
        except sqlite3.Error as exc:
            if not (self._on_disk and _storage_failure(exc)):
                raise
            self._fall_back(exc, "cannot write", self._snapshot())
            result = fn(self._db)
        if record and not self._on_disk:
            self.health.memory_writes += 1
        return result

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._db)
        except sqlite3.Error as exc:
            if not (self._on_disk and _storage_failure(exc)):
                raise
            self._fall_back(exc, "cannot read", self._snapshot())
            return fn(self._db)

    def maintain(self) -> None:
        """Cheap and frequent: on disk, one `stat()` (deleted or replaced?); in memory, the
        disk again when it is due."""
        if self._on_disk:
            self._check_file()
            return
        now = self._clock()
        if self._retry.may_look(now) and self._retry.due(now, _usable(self._facts())):
            self._try_disk(now)

    def report_to(self, report: Report) -> None:
        """Send the condition to `report` from now on, starting with the current one."""
        self._report = report
        self._set_condition(self._condition, force=True)

    def close(self) -> None:
        """Leave the data on disk for the next start: a deleted file is written anew, data in
        memory is tried on the disk once more (and reported lost if that fails)."""
        if self._on_disk:
            self._check_file()
        else:
            self._try_disk(self._clock())
        if not self._on_disk and (count := self._count(self._db)):
            self._log.error(
                "%s: %d %s held in memory could not be written to %s and are lost",
                self.spec.what,
                count,
                self.spec.rows,
                self.path,
            )
        self._db.close()

    # -- the file ----------------------------------------------------------------------

    def _memory(self) -> sqlite3.Connection:
        return self._connect(None)

    def _connect(self, path: Path | None) -> sqlite3.Connection:
        s = self.spec
        return connect(path, schema=s.schema, version=s.version, what=s.part, factory=self._factory)

    def _open_file(self, *, quiet: bool = False) -> sqlite3.Connection:
        """The file, created private; its identity is remembered. A file SQLite cannot read
        is moved aside first: logged, or with `quiet` kept in `_aside` for the caller."""
        s, path = self.spec, self.path
        self.dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        make_private(path)
        try:
            db = self._connect(path)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise
            aside = path.with_name(f"{s.filename}.damaged-{int(time.time())}")
            path.rename(aside)
            for suffix in SIDE_FILES:
                path.with_name(s.filename + suffix).unlink(missing_ok=True)
            self._aside = f"SQLite cannot read it ({exc}); moved it to {aside}"
            if not quiet:
                self._log.error(
                    "%s %s was unreadable (%s); moved it to %s and started a new one",
                    s.what,
                    path,
                    exc,
                    aside,
                )
            make_private(path)
            db = self._connect(path)
        try:
            self._identity = identity(path.stat())
        except OSError:
            db.close()
            raise
        return db

    def _to_file(self, data: sqlite3.Connection, *, quiet: bool = False) -> sqlite3.Connection:
        """Write `data` (in memory) to the file, which then replaces it. A file that is not
        the one this run wrote last gives its rows to `data` first (`quiet`: see
        `_open_file`)."""
        try:
            found: tuple[int, int] | None = identity(self.path.stat())
        except FileNotFoundError:
            found = None
        foreign = found is not None and found != self._identity
        db = self._open_file(quiet=quiet)
        try:
            adopted = self._adopt(db, data) if foreign and self._adopt is not None else 0
            if adopted:
                self._log.warning(
                    "%s %s held %d %s that this run had not seen (left by an earlier run, "
                    "or put there); kept them",
                    self.spec.what,
                    self.path,
                    adopted,
                    self.spec.rows,
                )
            data.backup(db)
        except BaseException:
            db.close()
            raise
        data.close()
        return db

    def _check_file(self) -> None:
        try:
            found = identity(self.path.stat())
        except FileNotFoundError:
            self._rewrite("was deleted")
            return
        except OSError:
            return  # cannot tell (the directory is not searchable); a write will tell
        if found != self._identity:
            self._rewrite("was replaced by another file")

    def _rewrite(self, what_happened: str) -> None:
        """The file edgecap had open is gone from its path: write its data anew."""
        data = self._snapshot()
        self._db.close()
        with contextlib.suppress(OSError):  # the -wal and -shm belonged to the old file
            for suffix in SIDE_FILES:
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        count = self._count(data)
        self._aside = None
        try:
            self._db = self._to_file(data, quiet=True)
        except (OSError, sqlite3.Error) as exc:
            self._fall_back(exc, f"{what_happened} and cannot be written anew", data)
            return
        self.health.recreated += 1
        self._log.warning(
            "%s %s %s while edgecap ran%s; wrote a new one with the %d %s it held",
            self.spec.what,
            self.path,
            what_happened,
            f" ({self._aside})" if self._aside else "",
            count,
            self.spec.rows,
        )

    # -- memory and back ---------------------------------------------------------------

    def _snapshot(self) -> sqlite3.Connection:
        """A copy in memory of what the open connection holds (empty if it cannot be read)."""
        copy = self._memory()
        try:
            self._db.backup(copy)
        except sqlite3.Error as exc:
            copy.close()
            copy = self._memory()
            self._log.error(
                "%s %s: cannot read what it held (%s); %s not yet saved elsewhere are lost",
                self.spec.what,
                self.path,
                exc,
                self.spec.rows,
            )
        return copy

    def _fall_back(self, exc: BaseException, doing: str, data: sqlite3.Connection) -> None:
        """Carry on with `data` in memory; say why, what it means and what to do."""
        if self._on_disk:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db, self._on_disk = data, False
        self.health.durable = False
        self.health.fallbacks += 1
        self._since = self._clock()
        self._retry.attempted(self._since)
        cause, error = _describe(exc, self._facts())
        self._log.error(
            "%s %s: %s: %s. Kept in memory from now on: %s; retrying every %.0f s. %s.",
            self.spec.what,
            self.path,
            doing,
            cause_text(cause, error),
            self.spec.in_memory_means,
            self._retry.period,
            remedy(cause, str(self.dir)),
        )
        self._set_condition(self._condition_line(cause, error))

    def _try_disk(self, now: float) -> None:
        self._retry.attempted(now)
        count = self._count(self._db)
        try:
            self._db = self._to_file(self._db)
        except (OSError, sqlite3.Error) as exc:
            self._set_condition(self._condition_line(*_describe(exc, self._facts())))
            return
        self._on_disk = True
        self.health.durable = True
        self._log.info(
            "%s %s: the disk works again; wrote the %d %s kept in memory for %.0f s to it",
            self.spec.what,
            self.path,
            count,
            self.spec.rows,
            now - self._since,
        )
        self._set_condition(None)

    def _facts(self) -> FsFacts | None:
        return fs_facts(self.dir, self.path)

    def _condition_line(self, cause: Cause, error: str) -> str:
        return (
            f"kept in memory: {cause_text(cause, error)}; {remedy(cause, str(self.dir))}; "
            f"retrying every {self._retry.period:.0f} s"
        )

    def _set_condition(self, line: str | None, *, force: bool = False) -> None:
        if line == self._condition and not force:
            return
        self._condition = line
        if self._report is not None:
            self._report(self.spec.part, line)

    def _count(self, db: sqlite3.Connection) -> int:
        try:
            count: int = db.execute(self.spec.count_sql).fetchone()[0]
        except sqlite3.Error:
            return 0
        return count
