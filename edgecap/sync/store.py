"""The pending utterances on disk: `state_dir/sync-pending/<key>.pcm` (the raw S16LE audio)
and `<key>.json` (what turn it becomes), both written to a temporary name, synced and
renamed, so a crash leaves either a whole utterance or none (thin adapter; the decisions
are `sync.pending`'s). A write that fails (disk full, read-only) keeps the audio in memory,
reported through `report`, so the utterance is still sent while the daemon runs."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from edgecap.sync.pending import PendingItem

log = logging.getLogger("edgecap.sync")

PENDING_DIR = "sync-pending"
Report = Callable[[str, str | None], None]


class PendingStore:
    def __init__(self, state_dir: Path, report: Report | None = None) -> None:
        self.dir = state_dir / PENDING_DIR
        self._memory: dict[str, bytes] = {}
        self._report = report or (lambda part, line: None)

    def load(self) -> list[PendingItem]:
        """What a previous run left to send (half-written files are removed)."""
        try:
            self._mkdir()
            names = sorted(os.listdir(self.dir))
        except OSError as exc:
            log.error("sync pending spool %s cannot be read: %s", self.dir, exc)
            return []
        items: list[PendingItem] = []
        for name in names:
            path = self.dir / name
            if name.endswith(".tmp") or (
                name.endswith(".pcm") and f"{name[:-4]}.json" not in names
            ):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            if not name.endswith(".json"):
                continue
            try:
                items.append(PendingItem(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("sync pending spool: %s is unreadable (%s); removed", name, exc)
                self.remove(name[:-5])
        return items

    def save(self, item: PendingItem, audio: bytes) -> None:
        try:
            self._mkdir()
            self._write(self.dir / f"{item.key}.pcm", audio)
            self._write(self.dir / f"{item.key}.json", json.dumps(asdict(item)).encode())
        except OSError as exc:
            self._memory[item.key] = audio
            self._report(
                "sync_pending",
                f"utterance audio kept in memory: {self.dir} cannot be written ({exc})",
            )
            return
        if not self._memory:
            self._report("sync_pending", None)

    def audio(self, key: str) -> bytes | None:
        if key in self._memory:
            return self._memory[key]
        try:
            return (self.dir / f"{key}.pcm").read_bytes()
        except OSError as exc:
            log.error("sync pending spool: the audio of %s cannot be read: %s", key, exc)
            return None

    def remove(self, key: str) -> None:
        self._memory.pop(key, None)
        for suffix in (".json", ".pcm"):  # the JSON first: no orphan it would point to
            try:
                (self.dir / f"{key}{suffix}").unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("sync pending spool: %s%s cannot be removed: %s", key, suffix, exc)
        if not self._memory:
            self._report("sync_pending", None)

    def _mkdir(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.dir.stat().st_mode & 0o077:
            self.dir.chmod(0o700)  # the audio is the household's speech

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
