"""The watchdog policy: ping only while audio is handled (no sockets, no sleeps)."""

from __future__ import annotations

import pytest

from edgecap.systemd.watchdog import CaptureLiveness, watchdog_interval

pytestmark = pytest.mark.unit


def test_interval_is_half_of_watchdog_usec_and_respects_the_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, pid=42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=42) is None
    assert watchdog_interval({}, pid=42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, pid=42) is None


def test_frames_flowing_allow_pings_and_a_stall_withholds_them() -> None:
    live = CaptureLiveness(stall_seconds=15, started_at=0)
    live.frame(10.0)
    assert live.reason_to_withhold(20.0) is None
    reason = live.reason_to_withhold(26.0)
    assert reason is not None
    assert "stalled" in reason


def test_no_frame_since_start_is_a_stall_once_the_window_passes() -> None:
    live = CaptureLiveness(stall_seconds=5, started_at=100.0)
    assert live.reason_to_withhold(104.0) is None
    assert live.reason_to_withhold(106.0) is not None


def test_missing_microphone_is_a_reported_state_not_a_watchdog_failure() -> None:
    live = CaptureLiveness(stall_seconds=5, started_at=0)
    live.unavailable(1.0, retry_in=30.0)  # backoff longer than the stall window
    assert live.reason_to_withhold(30.0) is None  # waiting for the retry: alive
    # the retry never happened: capture's own handling is stuck
    reason = live.reason_to_withhold(1.0 + 30 + 2 + 5 + 0.1)
    assert reason is not None
    assert "missed its own next step" in reason
    live.frame(40.0)  # the device came back
    assert live.reason_to_withhold(41.0) is None
