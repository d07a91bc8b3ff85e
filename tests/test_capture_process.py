"""Capture in a child process, through real alsa-lib (the FIFO-fed `file` PCM): frames in
order, a device whose open hangs (no FIFO writer yet) reported while the event loop keeps
running, a stalled device and a killed child restarted, quiet frames batched while only
listening, and the stream between child and daemon (a scripted child)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edgecap.audio.capture import CaptureEvent, CaptureProcess, CaptureSettings
from edgecap.audio.frame import Frame
from edgecap.audio.level import level_limit
from tests.harness import AlsaFifoSource, tone
from tests.harness.audio import room_noise

pytestmark = pytest.mark.integration

FAST = CaptureSettings(
    "testcap",
    open_report_seconds=1.0,
    open_restart_seconds=30.0,
    stall_seconds=1.0,
    reopen_min_seconds=0.2,
    reopen_max_seconds=1.0,
)


class Recorder:
    """Frames and events as the daemon would receive them, with the loop time they came."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.arrivals: list[float] = []
        self.events: list[CaptureEvent] = []
        self._changed = asyncio.Event()

    def on_frame(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.arrivals.append(asyncio.get_running_loop().time())
        self._changed.set()

    def on_event(self, event: CaptureEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    async def until(self, condition: Callable[[], object], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def event(self, kind: str, after: int = 0, within: float = 10.0) -> CaptureEvent:
        def found() -> CaptureEvent | None:
            return next((e for e in self.events[after:] if e.kind == kind), None)

        await self.until(found, within)
        event = found()
        assert event is not None
        return event


@pytest.fixture
async def capture_of() -> AsyncIterator[
    Callable[[CaptureSettings], tuple[CaptureProcess, Recorder]]
]:
    made: list[CaptureProcess] = []

    def make(settings: CaptureSettings) -> tuple[CaptureProcess, Recorder]:
        rec = Recorder()
        cap = CaptureProcess(settings, asyncio.get_running_loop(), rec.on_frame, rec.on_event)
        made.append(cap)
        return cap, rec

    yield make
    for cap in made:
        await cap.stop()


def batch_sizes(arrivals: list[float]) -> list[int]:
    """Frames handed over in one wake-up of the loop arrive within microseconds; wake-ups
    are a period (50 ms) or more apart."""
    sizes = [1]
    for before, at in itertools.pairwise(arrivals):
        if at - before < 0.005:
            sizes[-1] += 1
        else:
            sizes.append(1)
    return sizes


def child_pid(cap: CaptureProcess) -> int:
    proc = cap._proc
    assert proc is not None
    return proc.pid


async def test_frames_arrive_in_order_with_what_the_device_captured(
    alsa_source: AlsaFifoSource, capture_of: Callable[..., tuple[CaptureProcess, Recorder]]
) -> None:
    cap, rec = capture_of(FAST)
    cap.start()
    await rec.event("opened")
    noise = room_noise(1.0, noise_dbfs=-20.0, seed=7)  # no repeating pattern
    alsa_source.play_pcm(noise)
    await rec.until(lambda: len(rec.frames) >= 40)
    seqs = [f.seq for f in rec.frames]
    assert seqs == list(range(len(seqs)))
    assert all(len(f.pcm) == 1600 for f in rec.frames)
    steps = [b.monotonic - a.monotonic for a, b in itertools.pairwise(rec.frames)]
    assert all(abs(step - 0.05) < 0.002 for step in steps)  # smooth capture times
    # every byte played arrives, once, in order
    await rec.until(lambda: noise in b"".join(f.pcm for f in rec.frames), 5)


async def test_an_open_that_hangs_is_reported_while_the_loop_runs_and_audio_follows(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capture_of: Callable[..., tuple[CaptureProcess, Recorder]],
) -> None:
    source = AlsaFifoSource(tmp_path).prepare()  # the FIFO has no writer: open(2) blocks
    for key, value in source.env.items():
        monkeypatch.setenv(key, value)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    counting = asyncio.create_task(ticker())
    try:
        cap, rec = capture_of(FAST)
        began = time.monotonic()
        cap.start()
        report = await rec.event("unavailable", within=5)
        waited = time.monotonic() - began
        assert 0.9 < waited < 2.0
        assert report.detail.startswith("audio device 'testcap' has not opened after 1 s")
        assert "its ALSA plugin is waiting" in report.detail
        assert report.retry_in == pytest.approx(29.0, abs=0.5)
        assert ticks >= waited / 0.05 * 0.7  # the event loop never stopped
        assert rec.frames == []
        source.start()  # the writer appears: the waiting child opens at once
        await rec.event("opened", within=5)
        await rec.until(lambda: len(rec.frames) >= 10, 5)
        assert cap.children == 1  # the same child, not a restart
    finally:
        counting.cancel()
        source.stop()


async def test_stopping_while_the_open_hangs_takes_no_time_and_leaves_no_process(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capture_of: Callable[..., tuple[CaptureProcess, Recorder]],
) -> None:
    source = AlsaFifoSource(tmp_path).prepare()
    for key, value in source.env.items():
        monkeypatch.setenv(key, value)
    cap, rec = capture_of(FAST)
    cap.start()
    await rec.event("opening")
    pid = child_pid(cap)
    began = time.monotonic()
    await cap.stop()
    assert time.monotonic() - began < 1.0
    assert rec.kinds()[-1] == "closed"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


async def test_a_stalled_device_is_reopened_and_numbering_goes_on(
    alsa_source: AlsaFifoSource, capture_of: Callable[..., tuple[CaptureProcess, Recorder]]
) -> None:
    cap, rec = capture_of(FAST)
    cap.start()
    await rec.until(lambda: len(rec.frames) >= 5)
    alsa_source.pause()  # the reader blocks in read(): a stalled device
    report = await rec.event("unavailable", within=5)
    assert "stopped delivering audio" in report.detail
    before = len(rec.frames)
    alsa_source.resume()
    await rec.event("opened", after=rec.kinds().index("unavailable"), within=10)
    await rec.until(lambda: len(rec.frames) >= before + 5)
    seqs = [f.seq for f in rec.frames]
    assert seqs == sorted(set(seqs))  # increasing, never reused across children
    assert cap.children == 2


async def test_a_killed_child_is_reported_and_replaced(
    alsa_source: AlsaFifoSource, capture_of: Callable[..., tuple[CaptureProcess, Recorder]]
) -> None:
    cap, rec = capture_of(FAST)
    cap.start()
    await rec.until(lambda: len(rec.frames) >= 3)
    os.kill(child_pid(cap), signal.SIGKILL)
    report = await rec.event("unavailable")
    assert report.detail == (
        "audio capture of 'testcap' ended unexpectedly (killed by SIGKILL); starting it again"
    )
    count = len(rec.frames)
    await rec.until(lambda: len(rec.frames) >= count + 5, 10)
    assert cap.children == 2


async def test_while_only_listening_quiet_frames_come_in_batches_and_loud_ones_at_once(
    alsa_source: AlsaFifoSource, capture_of: Callable[..., tuple[CaptureProcess, Recorder]]
) -> None:
    settings = dataclasses.replace(FAST, quiet_limit=level_limit(-50), quiet_hold_ms=500)
    cap, rec = capture_of(settings)
    cap.hold_quiet = True
    cap.start()
    await rec.until(lambda: len(rec.frames) >= 30)  # the feeder writes digital silence
    assert max(batch_sizes(rec.arrivals)) == 10  # woken once per 500 ms of quiet
    loud_at = len(rec.frames)
    alsa_source.play_pcm(tone(0.2, 440, amplitude=0.5))
    await rec.until(lambda: any(max(f.pcm[1::2]) > 8 for f in rec.frames[loud_at:]), 5)
    cap.hold_quiet = False
    count = len(rec.frames)
    await rec.until(lambda: len(rec.frames) >= count + 10)
    assert set(batch_sizes(rec.arrivals[count + 1 :])) == {1}  # not holding: one by one


SCRIPTED_CHILD = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from edgecap.audio import wire
out = 1
def send(data): os.write(out, data)
mode = sys.argv[2]
if mode == "hang":
    time.sleep(60)
send(wire.message(wire.OPENED, b"scripted"))
now = time.monotonic()
for seq in (0, 1, 2):
    send(wire.message(wire.FRAME, bytes([seq]) * 1600, seq, now + seq * 0.05, time.time()))
send(wire.message(wire.OVERRUN, seq=3))
for seq in (4, 5):
    send(wire.message(wire.FRAME, bytes([seq]) * 1600, seq, now + seq * 0.05, time.time()))
if mode == "fail":
    send(wire.message(wire.FAILED, b"No such file or directory [testcap]"))
    sys.exit(2)
if mode == "garbage":
    send(b"\\x01" + (2**31).to_bytes(4, "little") + bytes(24))
time.sleep(60)
"""


def scripted(tmp_path: Path, mode: str) -> Callable[[CaptureSettings, int], list[str]]:
    script = tmp_path / "child.py"
    script.write_text(SCRIPTED_CHILD)
    root = str(Path(__file__).resolve().parent.parent)
    return lambda settings, fd: [sys.executable, str(script), root, mode]


@pytest.mark.parametrize("mode", ["fail", "garbage"])
async def test_what_the_child_writes_reaches_the_loop_in_order(tmp_path: Path, mode: str) -> None:
    rec = Recorder()
    cap = CaptureProcess(
        FAST,
        asyncio.get_running_loop(),
        rec.on_frame,
        rec.on_event,
        command=scripted(tmp_path, mode),
    )
    cap.start()
    try:
        report = await rec.event("unavailable")
    finally:
        await cap.stop()
    assert rec.kinds()[:3] == ["opening", "opened", "overrun"]
    assert [(f.seq, f.pcm[0]) for f in rec.frames] == [(0, 0), (1, 1), (2, 2), (4, 4), (5, 5)]
    if mode == "fail":
        assert report.detail.startswith("audio device 'testcap' not found")
        assert "plughw:CARD=<name>,DEV=0" in report.detail
    else:
        assert report.detail == "the audio capture process misbehaved; restarting it"
    assert report.retry_in is not None
    assert 0.2 <= report.retry_in <= 1.0
    assert cap.overruns == 1


async def test_a_scripted_child_that_hangs_is_killed_at_stop(tmp_path: Path) -> None:
    rec = Recorder()
    cap = CaptureProcess(
        FAST,
        asyncio.get_running_loop(),
        rec.on_frame,
        rec.on_event,
        command=scripted(tmp_path, "hang"),
    )
    cap.start()
    await rec.event("unavailable")  # reported after open_report_seconds
    began = time.monotonic()
    await cap.stop()
    assert time.monotonic() - began < 1.0
