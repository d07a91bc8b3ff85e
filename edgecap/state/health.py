"""Why a state file cannot be written, what to tell the user, and when to try again (no I/O).

`statedb.StateDb` (the adapter) gathers the facts: the SQLite error or `OSError`, and what
the file system says (`FsFacts`). This module turns them into a `Cause`, the one log line
and the status condition, and decides when the disk is tried again (`RetryPlan`).
"""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

RETRY_SECONDS = 30.0  # the disk is tried again at least this often while in memory
EARLY_RETRY_SECONDS = 5.0  # sooner when the file system looks usable again, not more often
MIN_FREE_BYTES = 64 * 1024  # "space is back": room for a few SQLite pages and a WAL frame

STATE_DIR_HINT = "Make state_dir writable (systemd: StateDirectory=edgecap)"


class Cause(Enum):
    FULL = "the disk is full"
    READ_ONLY = "the file system is read-only"
    PERMISSION = "permission denied"
    IO_ERROR = "an I/O error"
    DAMAGED = "the file is damaged"
    OTHER = "an unexpected error"


@dataclass(frozen=True, slots=True)
class FsFacts:
    """What the file system of the state directory says (None: it could not be asked)."""

    read_only: bool = False
    free_bytes: int | None = None
    writable: bool = True

    @property
    def looks_usable(self) -> bool:
        """Worth trying the disk now: writable and with some space."""
        roomy = self.free_bytes is None or self.free_bytes >= MIN_FREE_BYTES
        return not self.read_only and self.writable and roomy


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_PERMISSION_ERRNOS = {errno.EACCES, errno.EPERM}


def classify(
    error_name: str | None, error_no: int | None, message: str, fs: FsFacts | None
) -> Cause:
    """The likely cause of a failed open or write.

    `error_name` is SQLite's (`SQLITE_FULL`, `SQLITE_IOERR_WRITE`, ...), `error_no` an
    OS errno; `message` is used when neither is known. The file system's own state decides
    between causes SQLite cannot tell apart (an I/O error on a file system the kernel made
    read-only, a read-only error caused by permissions).
    """
    name = error_name or ""
    text = message.lower()
    if error_no in _FULL_ERRNOS or name.startswith("SQLITE_FULL") or "disk is full" in text:
        return Cause.FULL
    if error_no in _PERMISSION_ERRNOS or name in ("SQLITE_PERM", "SQLITE_AUTH"):
        return Cause.PERMISSION
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "not a database" in text:
        return Cause.DAMAGED
    read_only = error_no == errno.EROFS or name.startswith("SQLITE_READONLY")
    read_only = read_only or "readonly database" in text or "read-only" in text
    if fs is not None and fs.read_only:
        return Cause.READ_ONLY
    if read_only:
        return Cause.PERMISSION if fs is not None and not fs.writable else Cause.READ_ONLY
    if fs is not None and fs.free_bytes is not None and fs.free_bytes < MIN_FREE_BYTES:
        return Cause.FULL
    if fs is not None and not fs.writable:
        return Cause.PERMISSION
    if error_no == errno.EIO or name.startswith("SQLITE_IOERR") or "i/o error" in text:
        return Cause.IO_ERROR
    return Cause.OTHER


def remedy(cause: Cause, directory: str) -> str:
    """What the user should do about `cause` (one sentence, no trailing period)."""
    if cause is Cause.FULL:
        return f"Free space on the file system of {directory} (df -h {directory})"
    if cause is Cause.READ_ONLY:
        return (
            f"Make the file system of {directory} writable again (if the kernel made it "
            "read-only after an error: dmesg, fsck, remount)"
        )
    if cause is Cause.PERMISSION:
        return (
            f"Make {directory} and its files writable by the user edgecap runs as "
            "(systemd: StateDirectory=edgecap)"
        )
    if cause is Cause.IO_ERROR:
        return f"Check the storage of {directory} (dmesg): it may be failing or read-only"
    if cause is Cause.DAMAGED:
        return "edgecap moves the damaged file aside and starts a new one when it retries"
    return STATE_DIR_HINT


def cause_text(cause: Cause, error: str) -> str:
    """`the disk is full (database or disk is full)`; the raw error alone for OTHER."""
    return error if cause is Cause.OTHER else f"{cause.value} ({error})"


@dataclass
class RetryPlan:
    """When a store kept in memory tries the disk again (monotonic seconds).

    At least every `period`; sooner (but not more often than every `early`) when the file
    system looks usable again, which is cheap to ask (`FsFacts.looks_usable`).
    """

    period: float = RETRY_SECONDS
    early: float = EARLY_RETRY_SECONDS
    last_attempt: float = -math.inf

    def may_look(self, now: float) -> bool:
        """Whether asking the file system is worth it now."""
        return now - self.last_attempt >= self.early

    def due(self, now: float, looks_usable: bool) -> bool:
        return now - self.last_attempt >= (self.early if looks_usable else self.period)

    def attempted(self, now: float) -> None:
        self.last_attempt = now


@dataclass
class StoreHealth:
    """What a store counted, for the retained `stats` message (`storage.<part>`)."""

    durable: bool = True
    fallbacks: int = 0
    """Times the store had to move to memory (a write or an open failed)."""
    recreated: int = 0
    """Times its file was deleted or replaced while edgecap ran and was written anew."""
    memory_writes: int = 0
    """Records written while the store was in memory only (spool: turns; ledger: writes)."""

    def payload(self) -> dict[str, Any]:
        return {
            "durable": self.durable,
            "fallbacks": self.fallbacks,
            "recreated": self.recreated,
            "memory_writes": self.memory_writes,
        }
