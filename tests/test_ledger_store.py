"""The persisted billing ledger: totals that survive restarts and kill -9, billing days at the
configured reset time, and the `billing` section of the retained stats message.

Real SQLite files in a temporary directory. The local time zone is set to Asia/Kolkata
(UTC+05:30) so a billing day that followed UTC instead of local time would show.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time as systime
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from edgecap.billing.ledger import HEARTBEAT_SECONDS, Ledger, billing_summary
from edgecap.billing.store import FILENAME, LedgerStore
from edgecap.mqtt.stats import DaemonCounters, DeliveryCounters, stats_json, stats_payload
from tests.strict_json import strict_loads

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def local_zone() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    systime.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    systime.tzset()


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """Unix time of a local wall-clock time."""
    return datetime(year, month, day, hour, minute).timestamp()


def local(t: float) -> datetime:
    return datetime.fromtimestamp(t).astimezone()


def rows(state: Path) -> list[tuple[str, float | None, str | None]]:
    db = sqlite3.connect(state / FILENAME)
    out = db.execute(
        "SELECT session_id, billed_seconds, source FROM sessions ORDER BY started_at"
    ).fetchall()
    db.close()
    return out


NOON = ts(2026, 11, 21, 12, 0)


def test_totals_survive_reopen(tmp_path: Path) -> None:
    store = LedgerStore.open(tmp_path, Ledger(), now=NOON)
    assert store.durable
    store.session_opened("s1", NOON)
    today = store.session_closed("s1", NOON + 42, 41.6, 30.2, "server")
    assert (today.sessions, today.billed_seconds) == (1, 41.6)
    store.session_closed("s2", NOON + 100, 12.0, 9.0, "local")  # never opened: still counted
    store.close()

    ledger = Ledger()
    again = LedgerStore.open(tmp_path, ledger, now=NOON + 200)
    totals = ledger.today(local(NOON + 200))
    assert totals.sessions == 2
    assert totals.billed_seconds == pytest.approx(53.6)
    assert totals.speech_seconds == pytest.approx(39.2)
    assert {r[2] for r in rows(tmp_path)} == {"server", "local"}
    again.close()


def test_session_left_open_is_recovered_with_an_over_estimate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = LedgerStore.open(tmp_path, Ledger(), now=NOON)
    first.session_opened("dead-beef", NOON)
    for i in (1, 2, 3):
        first.heartbeat("dead-beef", NOON + 10 * i, speech_seconds=4.0 * i)
    # the process "dies" here: no session_closed, no close()

    ledger = Ledger(budget_seconds=60)
    with caplog.at_level(logging.WARNING):
        second = LedgerStore.open(tmp_path, ledger, now=NOON + 600)
    today = ledger.today(local(NOON + 600))
    assert today.sessions == 1
    assert today.billed_seconds == 30 + HEARTBEAT_SECONDS  # never less than it really billed
    assert today.speech_seconds == 12.0
    assert not ledger.exhausted(local(NOON + 600))
    assert ledger.exhausted(local(NOON + 600), open_session_seconds=20)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "dead-beef" in warnings[0].getMessage()
    assert "40.0" in warnings[0].getMessage()
    assert rows(tmp_path) == [("dead-beef", 40.0, "recovered")]
    second.close()

    caplog.clear()  # recovered once, not again on the next start
    third_ledger = Ledger()
    LedgerStore.open(tmp_path, third_ledger, now=NOON + 900).close()
    assert third_ledger.today(local(NOON + 900)).billed_seconds == 40.0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


CHILD = """
import sys, threading
from pathlib import Path
from edgecap.billing.ledger import Ledger
from edgecap.billing.store import LedgerStore

state, base = Path(sys.argv[1]), float(sys.argv[2])
store = LedgerStore.open(state, Ledger(), now=base)
store.session_closed("early-this-month", base - 18 * 86400, 50.0, 40.0, "server")
store.session_closed("last-month", base - 40 * 86400, 70.0, 60.0, "server")
store.session_opened("closed", base)
store.session_closed("closed", base + 100, 100.0, 80.0, "server")
store.session_opened("open", base + 200)
store.heartbeat("open", base + 210, speech_seconds=3.0)
store.heartbeat("open", base + 220, speech_seconds=5.0)
print("READY", flush=True)
threading.Event().wait()
"""


def test_kill_9_mid_session_keeps_closed_sessions_and_recovers_the_open_one(
    tmp_path: Path,
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), repr(NOON)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL

    ledger = Ledger()
    store = LedgerStore.open(tmp_path, ledger, now=NOON + 400)
    summary = billing_summary(store.ledger, local(NOON + 400), gate="voice")
    # today: the closed session and the killed one (20 s seen + 10 s over-estimate)
    today = summary["today"]
    assert today == {"sessions": 2, "speech_seconds": 85.0, "billed_seconds": 130.0, "cost": None}
    # this month adds the session of the 3rd; October's is not in it
    month = summary["month"]
    assert month == {"sessions": 3, "speech_seconds": 125.0, "billed_seconds": 180.0, "cost": None}
    assert dict((r[0], r[2]) for r in rows(tmp_path))["open"] == "recovered"
    store.close()


def test_billing_days_follow_the_current_reset_time(tmp_path: Path) -> None:
    store = LedgerStore.open(tmp_path, Ledger(reset_at=time(4, 0)), now=NOON)
    store.session_closed("a", ts(2026, 11, 21, 3, 59), 100.0, 50.0, "server")
    store.session_closed("b", ts(2026, 11, 21, 4, 1), 10.0, 5.0, "server")
    store.close()

    at_four = Ledger(reset_at=time(4, 0))
    LedgerStore.open(tmp_path, at_four, now=NOON).close()
    # 03:59 belongs to the day that started at 04:00 on the 20th
    assert at_four.today(local(ts(2026, 11, 21, 3, 0))).billed_seconds == 100.0
    assert at_four.today(local(NOON)).billed_seconds == 10.0

    # the reset time was changed to 03:00: both sessions now fall on the 21st
    at_three = Ledger(reset_at=time(3, 0))
    LedgerStore.open(tmp_path, at_three, now=NOON).close()
    assert at_three.today(local(NOON)).sessions == 2
    assert at_three.today(local(NOON)).billed_seconds == 110.0


def test_month_totals_use_billing_days_and_use_ledger_replays(tmp_path: Path) -> None:
    store = LedgerStore.open(tmp_path, Ledger(reset_at=time(4, 0)), now=NOON)
    # 02:00 on 1 November is still 31 October's billing day, so October's month
    store.session_closed("oct", ts(2026, 11, 1, 2, 0), 30.0, 20.0, "server")
    store.session_closed("nov-1", ts(2026, 11, 1, 5, 0), 40.0, 30.0, "server")
    store.session_closed("nov-21", NOON, 50.0, 40.0, "local")
    month = store.ledger.month(local(NOON))
    assert (month.sessions, month.billed_seconds) == (2, 90.0)
    october = store.ledger.month(local(ts(2026, 10, 31, 12, 0)))
    assert (october.sessions, october.billed_seconds) == (1, 30.0)

    # a config reload with midnight resets: the stored sessions are counted again from scratch
    store.ledger.reset_at = time(0, 0)
    store.recount(now=NOON)
    assert store.ledger.month(local(NOON)).billed_seconds == 120.0
    store.close()


def test_sessions_older_than_13_months_are_pruned(tmp_path: Path) -> None:
    store = LedgerStore.open(tmp_path, Ledger(), now=NOON)
    store.session_closed("ancient", NOON - 420 * 86400, 10.0, 5.0, "server")
    store.session_closed("recent", NOON - 300 * 86400, 10.0, 5.0, "server")
    store.close()
    LedgerStore.open(tmp_path, Ledger(), now=NOON).close()
    assert [r[0] for r in rows(tmp_path)] == ["recent"]


def test_session_closed_twice_is_counted_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LedgerStore.open(tmp_path, Ledger(), now=NOON)
    store.session_opened("s", NOON)
    store.session_closed("s", NOON + 10, 10.0, 5.0, "server")
    totals = store.session_closed("s", NOON + 11, 11.0, 5.0, "local")
    assert (totals.sessions, totals.billed_seconds) == (1, 10.0)
    assert "already closed" in caplog.text
    store.close()


def test_damaged_ledger_file_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILENAME).write_bytes(b"not a database at all" * 100)
    store = LedgerStore.open(tmp_path, Ledger(), now=NOON)
    assert store.durable
    store.session_closed("s", NOON, 5.0, 2.0, "server")
    store.close()
    assert [p.name for p in tmp_path.iterdir() if ".damaged-" in p.name]
    assert "billing ledger" in caplog.text
    assert "was unreadable" in caplog.text
    assert rows(tmp_path) == [("s", 5.0, "server")]


def test_unusable_state_dir_keeps_the_ledger_in_memory_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    ledger = Ledger(budget_seconds=20)
    store = LedgerStore.open(blocker / "state", ledger, now=NOON)  # no directory in a file
    assert not store.durable
    store.session_opened("s", NOON)
    store.heartbeat("s", NOON + 10)
    store.session_closed("s", NOON + 25, 25.0, 10.0, "local")
    assert ledger.exhausted(local(NOON + 30))  # the budget still holds for this run
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "billing ledger" in errors[0].getMessage()
    assert "Kept in memory from now on" in errors[0].getMessage()
    store.close()


def test_billing_summary_counts_an_open_session_in_billed_time_and_budget() -> None:
    ledger = Ledger(reset_at=time(4, 0), budget_seconds=600, price_per_hour=0.45)
    ledger.record(local(ts(2026, 11, 21, 3, 0)), 200.0, 150.0)  # the 20th's billing day
    ledger.record(local(ts(2026, 11, 21, 9, 0)), 300.04, 250.06)
    now = local(ts(2026, 11, 21, 10, 0))
    summary = billing_summary(ledger, now, open_session_seconds=120.0, gate="voice")
    assert summary == {
        "gate": "voice",
        "day": "2026-11-21",
        # 04:00 on the 22nd in Kolkata (UTC+05:30)
        "resets_at": "2026-11-21T22:30:00.000Z",
        # the cost is the billed time at the price: 420 s at $0.45/h
        "today": {"sessions": 1, "speech_seconds": 250.1, "billed_seconds": 420.0, "cost": 0.0525},
        "month": {"sessions": 2, "speech_seconds": 400.1, "billed_seconds": 620.0, "cost": 0.0775},
        "currency": "USD",
        "price_per_hour": 0.45,
        "budget_seconds": 600.0,
        "budget_left_seconds": 180.0,
        "budget_exhausted": False,
    }
    over = billing_summary(ledger, now, open_session_seconds=400.0, gate="voice")
    assert over["budget_left_seconds"] == 0.0
    assert over["budget_exhausted"] is True
    unlimited = billing_summary(Ledger(), now, gate="always")
    assert (unlimited["budget_seconds"], unlimited["budget_left_seconds"]) == (None, None)
    assert unlimited["budget_exhausted"] is False
    assert unlimited["resets_at"] == datetime(2026, 11, 22).astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )


def test_stats_message_carries_the_billing_section(tmp_path: Path) -> None:
    store = LedgerStore.open(tmp_path, Ledger(budget_seconds=3600), now=NOON)
    store.session_closed("s1", NOON, 61.26, 40.0, "server")
    store.session_opened("s2", NOON + 100)
    # the open session's running time comes from the billing guard (30 s at NOON + 130)
    billing = billing_summary(
        store.ledger, local(NOON + 130), open_session_seconds=30.0, gate="voice"
    )
    assert billing["today"]["billed_seconds"] == 91.3  # 61.26 closed + 30 s still open
    assert billing["today"]["sessions"] == 1

    counters = DaemonCounters(sessions=2, billed_seconds=61.26, billing=billing)
    payload = stats_payload(
        "kitchen-pi", counters, DeliveryCounters(), now=NOON + 130, started_at=NOON
    )
    assert payload["schema"] == "edgecap.stats/1"
    decoded = strict_loads(stats_json(payload))
    assert decoded["billing"]["budget_left_seconds"] == 3508.7
    assert decoded["billing"]["month"]["sessions"] == 1
    assert decoded["billed_seconds"] == 61.3  # the counters since start are unchanged
    without = stats_payload(
        "kitchen-pi", DaemonCounters(), DeliveryCounters(), now=NOON, started_at=NOON
    )
    assert "billing" not in without
    store.close()
