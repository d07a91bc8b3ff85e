"""The Sync pipeline's pending utterances: in order, bounded (count, bytes, age) with every
drop counted, back-off doubling or Retry-After honoured; on disk, they survive a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecap.sync.pending import DropReason, PendingBounds, PendingItem, PendingQueue
from edgecap.sync.store import PENDING_DIR, PendingStore

pytestmark = pytest.mark.unit


def item(n: int, size: int = 100, at: float = 1000.0) -> PendingItem:
    return PendingItem(
        key=f"{n:06d}",
        session_id="sync-abc",
        turn_order=n,
        started_at=at + n,
        ended_at=at + n + 1,
        size_bytes=size,
        audio_seconds=size / 32000,
    )


def test_only_the_oldest_is_due_and_failures_back_off_in_order() -> None:
    q = PendingQueue(PendingBounds(retry_min_seconds=1, retry_max_seconds=5))
    q.add(item(2), 1000)
    q.add(item(1), 1000)
    head = q.head()
    assert head is not None
    assert head.key == "000001"
    assert [q.failed("000001", 1000) for _ in range(5)] == [1, 2, 4, 5, 5]
    assert q.wait(1000) == pytest.approx(5)
    assert q.failed("000001", 1000, retry_after=30) == 30  # the server's word wins
    assert q.wait(1010) == pytest.approx(20)
    q.done("000001")
    second = q.head()
    assert second is not None
    assert second.key == "000002"
    assert q.wait(1010) == 0


def test_bounds_drop_the_oldest_and_count_it() -> None:
    q = PendingQueue(PendingBounds(max_count=2, max_bytes=250, max_age_seconds=60))
    q.add(item(1), 1000)
    q.add(item(2), 1000)
    gone = q.add(item(3), 1000)
    assert [(d.item.key, d.reason) for d in gone] == [("000001", DropReason.FULL)]
    gone = q.add(item(4, size=200), 1000)
    assert [d.item.key for d in gone] == ["000002", "000003"]  # bytes
    assert [d.reason for d in q.expire(1000 + 4 + 1 + 61)] == [DropReason.AGE]
    refused = q.refused("nope")
    assert refused is None
    summary = q.summary()
    assert summary["pending"] == 0
    assert summary["dropped"] == {"full": 3, "age": 1, "refused": 0}


def test_a_single_oversized_utterance_is_kept() -> None:
    q = PendingQueue(PendingBounds(max_bytes=10))
    assert q.add(item(1, size=100), 1000) == []
    assert q.count == 1


def test_the_store_survives_a_restart_and_cleans_half_writes(tmp_path: Path) -> None:
    store = PendingStore(tmp_path)
    store.load()
    store.save(item(1), b"\x01\x00" * 50)
    store.save(item(2), b"\x02\x00" * 50)
    (tmp_path / PENDING_DIR / "000003.pcm").write_bytes(b"orphan")  # crash before its JSON
    (tmp_path / PENDING_DIR / "000004.pcm.tmp").write_bytes(b"half")
    again = PendingStore(tmp_path)
    loaded = again.load()
    assert [i.key for i in loaded] == ["000001", "000002"]
    assert loaded[0] == item(1)
    assert again.audio("000002") == b"\x02\x00" * 50
    again.remove("000001")
    assert sorted(p.name for p in (tmp_path / PENDING_DIR).iterdir()) == [
        "000002.json",
        "000002.pcm",
    ]
    assert (tmp_path / PENDING_DIR).stat().st_mode & 0o777 == 0o700


def test_an_unwritable_store_keeps_the_audio_in_memory_and_says_so(tmp_path: Path) -> None:
    reports: list[tuple[str, str | None]] = []
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = PendingStore(blocker, lambda part, line: reports.append((part, line)))
    store.save(item(1), b"abc")
    assert store.audio("000001") == b"abc"
    assert reports
    assert reports[-1][0] == "sync_pending"
    assert "memory" in (reports[-1][1] or "")
    store.remove("000001")
    assert reports[-1] == ("sync_pending", None)
