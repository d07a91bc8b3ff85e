"""The capture child's supervision, decided without processes: when a hanging open is
reported and with what cause, when a child is killed and started again, the back-off."""

from __future__ import annotations

import random

import pytest

from edgecap.audio.child import QuietHold
from edgecap.audio.level import level_limit
from edgecap.audio.watch import (
    CaptureWatch,
    Kill,
    Phase,
    Report,
    Spawn,
    WatchSettings,
    blocking_open_cause,
)

pytestmark = pytest.mark.unit

S = WatchSettings(
    open_report_seconds=5.0,
    open_restart_seconds=60.0,
    stall_seconds=3.0,
    reopen_min_seconds=1.0,
    reopen_max_seconds=30.0,
    stable_seconds=10.0,
    jitter_seconds=0.0,
)


def started(device: str = "testcap", now: float = 100.0) -> CaptureWatch:
    watch = CaptureWatch(device, S, rng=random.Random(1))
    assert watch.tick(0.0) == [Spawn()]  # the first child starts at once
    watch.spawned(now)
    return watch


def test_an_open_that_hangs_is_reported_once_with_its_cause_then_restarted() -> None:
    watch = started("default")
    assert watch.next_tick(100.0) == 105.0
    assert watch.tick(104.9) == []
    [report] = watch.tick(105.0)
    assert isinstance(report, Report)
    assert "audio device 'default' has not opened after 5 s" in report.detail
    assert "PipeWire/Pulse sound server does not answer" in report.detail
    assert "plughw:CARD=<name>,DEV=0" in report.detail
    assert report.retry_in == 55.0  # when the child is killed and started again
    assert watch.tick(130.0) == []  # reported once, the child keeps waiting
    assert watch.next_tick(130.0) == 160.0
    [kill] = watch.tick(160.0)
    assert isinstance(kill, Kill)
    ended = watch.ended(160.1, "killed by SIGKILL")
    assert ended is not None
    assert "has not opened after 60 s" in ended.detail
    assert "starting the capture again" in ended.detail
    assert ended.retry_in == 1.0
    assert watch.tick(161.1) == [Spawn()]


def test_a_device_that_opens_late_is_not_killed() -> None:
    watch = started("hw:CARD=Device,DEV=0")
    [report] = watch.tick(105.0)
    assert isinstance(report, Report)
    assert "probably held by another program" in report.detail
    assert "fuser -v /dev/snd/*" in report.detail
    watch.opened(120.0)
    assert watch.phase is Phase.OPEN
    watch.frame(120.05)
    assert watch.tick(160.0 - 37.0) == []  # no restart once it delivers


def test_a_busy_device_is_reported_at_once() -> None:
    watch = started("plughw:CARD=Device,DEV=0")
    report = watch.held_by_another(100.2, "Device or resource busy [plughw:CARD=Device,DEV=0]")
    assert report.detail.startswith(
        "audio device 'plughw:CARD=Device,DEV=0' is held by another program "
        "(Device or resource busy"
    )
    assert report.retry_in == pytest.approx(59.8)
    assert watch.tick(105.0) == []  # already said


def test_failed_opens_back_off_exponentially_to_the_cap_and_reset_after_a_stable_run() -> None:
    watch = started()
    delays = []
    now = 100.0
    for _ in range(7):
        watch.failed(now, "audio device 'testcap' not found (...)")
        report = watch.ended(now, "exit status 2")
        assert report is not None
        assert report.detail == "audio device 'testcap' not found (...)"  # the child's reason
        delays.append(report.retry_in)
        now += report.retry_in
        assert watch.tick(now) == [Spawn()]
        watch.spawned(now)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    watch.opened(now)
    watch.frame(now + 9.0)
    assert watch.failures == 7  # not yet stable
    watch.frame(now + 10.0)
    assert watch.failures == 0
    watch.failed(now + 11, "gone")
    again = watch.ended(now + 11, "exit status 2")
    assert again is not None
    assert again.retry_in == 1.0


def test_a_device_that_stops_delivering_is_killed_and_reopened() -> None:
    watch = started()
    watch.opened(101.0)
    watch.frame(102.0)
    assert watch.next_tick(102.0) == 105.0
    assert watch.tick(104.9) == []
    [kill] = watch.tick(105.0)
    assert isinstance(kill, Kill)
    assert "stopped delivering audio (nothing for 3.0 s)" in kill.reason
    report = watch.ended(105.1, "killed by SIGKILL")
    assert report is not None
    assert report.detail == kill.reason


def test_a_child_that_dies_without_a_word_is_reported_and_restarted() -> None:
    watch = started()
    watch.opened(101.0)
    report = watch.ended(102.0, "killed by SIGSEGV")
    assert report is not None
    assert report.detail == (
        "audio capture of 'testcap' ended unexpectedly (killed by SIGSEGV); starting it again"
    )
    assert watch.phase is Phase.WAITING


def test_nothing_happens_after_stop() -> None:
    watch = started()
    watch.stop()
    assert watch.ended(101.0, "killed by SIGKILL") is None
    assert watch.tick(1000.0) == []
    assert watch.next_tick(1000.0) is None


@pytest.mark.parametrize(
    ("device", "needle"),
    [
        ("pulse", "PipeWire/Pulse sound server"),
        ("pipewire", "PipeWire/Pulse sound server"),
        ("hw:1,0", "probably held by another program"),
        ("testcap", "its ALSA plugin is waiting"),
        ("dsnoop:CARD=x", "its ALSA plugin is waiting"),
    ],
)
def test_the_cause_of_a_hanging_open_follows_the_device_name(device: str, needle: str) -> None:
    assert needle in blocking_open_cause(device, 5.0, None)


QUIET = (40).to_bytes(2, "little", signed=True) * 800
LOUD = (3000).to_bytes(2, "little", signed=True) * 800


@pytest.mark.parametrize("holding", [True, False])
def test_quiet_frames_wait_for_every_tenth_or_a_loud_one_only_while_holding(
    holding: bool,
) -> None:
    hold = QuietHold(level_limit(-50), max_frames=10)
    written = [i for i in range(40) if not hold.keep(LOUD if i == 25 else QUIET, holding)]
    # a write per 10 quiet frames (500 ms), and at once for the loud frame (25)
    assert written == ([9, 19, 25, 35] if holding else list(range(40)))
