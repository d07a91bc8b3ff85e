"""The daemon's side of ALSA capture: a child process reads the device, the event loop reads
its pipe.

pyalsaaudio holds the GIL while it opens, sets up, prepares and closes a device, and any of
those can block (a device another program holds, a sound server that does not answer), so
in-process capture can freeze the whole daemon. The capture child (`edgecap.audio.child`)
does every ALSA call; the loop watches its stdout with `add_reader` and hands `Frame`s and
`CaptureEvent`s to the callbacks, in order. The child never waits for the loop (its pipe is
enlarged to 1 MiB, about 30 s of audio), and the loop never waits for the child.

`CaptureWatch` (no I/O) decides when a child is started, reported, killed and started again;
this class only carries out its decisions. A missing, busy, hanging or stalled device is
reported through `on_event` as `unavailable` with one actionable line and `retry_in`; the
daemon never exits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from edgecap.audio import wire
from edgecap.audio.child import ChildArgs
from edgecap.audio.frame import CaptureClock, Frame
from edgecap.audio.spawn import isolated_python
from edgecap.audio.watch import CaptureWatch, Kill, Phase, Report, Spawn, WatchSettings

log = logging.getLogger(__name__)

CaptureEventKind = Literal["opening", "opened", "unavailable", "overrun", "closed"]
PIPE_BYTES = 1 << 20  # what the child may write ahead of a busy loop (~30 s at 16 kHz)
READ_BYTES = 1 << 16
MAX_PAYLOAD = 1 << 20  # more is not a period or an error text: the stream is corrupt
STOP_GRACE_SECONDS = 0.5  # a delivering child exits after its next read; then it is killed
REAP_SECONDS = 0.5
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_unpack_header = wire.HEADER.unpack_from
_HEADER_SIZE = wire.HEADER.size


@dataclass(frozen=True, slots=True)
class CaptureEvent:
    kind: CaptureEventKind
    device: str
    detail: str = ""
    retry_in: float | None = None
    """For `opening` and `unavailable`: seconds until capture's next step (a report, a
    restart or a new attempt); the watchdog allows that long before calling it a hang."""


class DeviceError(Exception):
    """The capture device could not be opened or stopped delivering audio."""


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    device: str
    sample_rate: int = 16000
    frame_ms: int = 50
    periods: int = 4
    reopen_min_seconds: float = 1.0
    reopen_max_seconds: float = 30.0
    quiet_limit: int = 0
    """Peak magnitude below which a frame may wait for the next wake-up of the loop while
    `CaptureProcess.hold_quiet` is set (0: never; the voice gate's `vad_quiet_dbfs`)."""
    quiet_hold_ms: int = 500
    """The longest a quiet frame waits."""
    open_report_seconds: float = 5.0
    open_restart_seconds: float = 60.0
    stall_seconds: float = 3.0

    @property
    def period_frames(self) -> int:
        return self.sample_rate * self.frame_ms // 1000

    @property
    def period_bytes(self) -> int:
        return self.period_frames * 2

    def watch_settings(self) -> WatchSettings:
        return WatchSettings(
            open_report_seconds=self.open_report_seconds,
            open_restart_seconds=self.open_restart_seconds,
            stall_seconds=self.stall_seconds,
            reopen_min_seconds=self.reopen_min_seconds,
            reopen_max_seconds=self.reopen_max_seconds,
        )


def explain_device_error(device: str, error: BaseException | str) -> str:
    """One actionable line for an ALSA open/read failure."""
    text = str(error) or type(error).__name__
    if "No such file or directory" in text or "Unknown PCM" in text:
        return (
            f"audio device {device!r} not found ({text}); is the microphone plugged in? "
            "List devices with `arecord -L` and set audio.device to a stable name such as "
            "plughw:CARD=<name>,DEV=0"
        )
    if "busy" in text.lower():
        return (
            f"audio device {device!r} is busy ({text}); another program is recording from it "
            "(check `fuser -v /dev/snd/*`), or use a dsnoop device to share it"
        )
    if "Permission denied" in text:
        return (
            f"no permission to open audio device {device!r} ({text}); the service user "
            "needs the 'audio' group"
        )
    if "No module named 'alsaaudio'" in text:
        return "pyalsaaudio is not installed in edgecap's environment; reinstall edgecap"
    return f"audio device {device!r} failed: {text}"


def explain_unsupported(settings: CaptureSettings, granted: str) -> str:
    return (
        f"audio device {settings.device!r} does not support {settings.sample_rate} Hz mono "
        f"S16_LE in {settings.frame_ms} ms periods ({granted}); use a 'plughw:' or 'plug' "
        "device so ALSA converts"
    )


def child_command(settings: CaptureSettings, control_fd: int) -> list[str]:
    """The capture child's command line (`edgecap.audio.spawn`)."""
    args = ChildArgs(
        settings.device,
        rate=settings.sample_rate,
        period_frames=settings.period_frames,
        periods=settings.periods,
        quiet_limit=settings.quiet_limit,
        hold_frames=max(1, settings.quiet_hold_ms // settings.frame_ms),
        control_fd=control_fd,
        probe=True,
    )
    return isolated_python("edgecap.audio.child", *args.to_argv())


def _exit_words(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


class CaptureProcess:
    """Runs capture children one after another; delivers `Frame`s and `CaptureEvent`s on
    the event loop. `start()` and `stop()` are called on the loop."""

    def __init__(
        self,
        settings: CaptureSettings,
        loop: asyncio.AbstractEventLoop,
        on_frame: Callable[[Frame], None],
        on_event: Callable[[CaptureEvent], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        command: Callable[[CaptureSettings, int], list[str]] = child_command,
    ) -> None:
        self.settings = settings
        self._loop = loop
        self._on_frame = on_frame
        self._on_event = on_event
        self._clock = clock
        self._command = command
        self.watch = CaptureWatch(settings.device, settings.watch_settings())
        self.overruns = 0
        self.frames_captured = 0
        self.children = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd = -1
        self._rest = b""  # an incomplete message at the end of the last read
        self._discard = False  # the stream is corrupt: read until the killed child's EOF
        self._frame_message = wire.HEADER.size + settings.period_bytes
        self._seq_base = 0
        self._next_seq = 0
        self._clock_stamps = CaptureClock(settings.frame_ms / 1000)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._ended = asyncio.Event()
        self._ended.set()
        self._control_fd = -1
        self._control: mmap.mmap | None = None
        self._hold = False

    # -- for the daemon ------------------------------------------------------------------

    @property
    def hold_quiet(self) -> bool:
        """Set while the daemon only listens (no session, voice gate): quiet frames then
        wait in the child, up to `quiet_hold_ms`, and the loop is woken once for them all,
        or at once by the next frame that is not quiet."""
        return self._hold

    @hold_quiet.setter
    def hold_quiet(self, value: bool) -> None:
        if value is not self._hold:
            self._hold = value
            if self._control is not None:
                self._control[wire.HOLD] = 1 if value else 0

    def start(self) -> None:
        self._control_fd = os.memfd_create("edgecap-capture-control", os.MFD_CLOEXEC)
        os.ftruncate(self._control_fd, wire.CONTROL_SIZE)
        self._control = mmap.mmap(self._control_fd, wire.CONTROL_SIZE)
        self._control[wire.HOLD] = 1 if self._hold else 0
        self._tick()

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """End capture: a delivering child stops after its next read (what it captured is
        delivered first); one that is opening or does not stop within `grace` is killed."""
        delivering = self.watch.phase is Phase.OPEN
        self.watch.stop()
        self._cancel_timer()
        if self._control is not None:
            self._control[wire.STOP] = 1
        if self._proc is not None:
            if not delivering:
                self._kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), grace)
            if not self._ended.is_set():
                self._kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ended.wait(), REAP_SECONDS)
            if not self._ended.is_set():  # stuck in the kernel (D state): let it go
                log.warning("the capture child did not exit after SIGKILL; leaving it")
                self._close_pipe()
        if self._control is not None:
            self._control.close()
            os.close(self._control_fd)
            self._control = None
        self._emit(CaptureEvent("closed", self.settings.device))

    # -- decisions -----------------------------------------------------------------------

    def _tick(self) -> None:
        self._timer = None
        now = self._clock()
        for action in self.watch.tick(now):
            if isinstance(action, Spawn):
                self._spawn(now)
            elif isinstance(action, Kill):
                log.debug("killing the capture child: %s", action.reason)
                self._kill()
            else:
                self._report(action)
        self._schedule()

    def _schedule(self) -> None:
        at = self.watch.next_tick(self._clock())
        if at is None:
            return
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_later(max(0.0, at - self._clock()), self._tick)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _report(self, report: Report) -> None:
        self._emit(
            CaptureEvent("unavailable", self.settings.device, report.detail, report.retry_in)
        )

    def _emit(self, event: CaptureEvent) -> None:
        self._on_event(event)

    # -- the child -----------------------------------------------------------------------

    def _spawn(self, now: float) -> None:
        assert self._control is not None
        self._control[wire.STOP] = 0
        cmd = self._command(self.settings, self._control_fd)
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                pass_fds=(self._control_fd,),
                process_group=0,  # no terminal signals: the daemon decides when it ends
            )
        except OSError as exc:  # fork/exec failed (memory, fd limits): try again later
            self.watch.spawned(now)
            self.watch.failed(now, f"cannot start the audio capture process: {exc}")
            self._report_ended("not started")
            return
        assert proc.stdout is not None
        self._proc = proc
        self.children += 1
        self._fd = proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: keep 64 KiB
            fcntl.fcntl(self._fd, _F_SETPIPE_SZ, PIPE_BYTES)
        self._rest = b""
        self._discard = False
        self._seq_base = self._next_seq
        self._clock_stamps = CaptureClock(self.settings.frame_ms / 1000)
        self._ended.clear()
        self._loop.add_reader(self._fd, self._readable)
        self.watch.spawned(now)
        self._emit(
            CaptureEvent(
                "opening",
                self.settings.device,
                f"capture process {proc.pid}",
                retry_in=self.watch.s.open_report_seconds,
            )
        )

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)

    def _readable(self) -> None:
        try:
            chunk = os.read(self._fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._child_ended()
            return
        if self._discard:
            return
        if self._rest:
            self._rest = self._parse(self._rest + chunk)
        elif len(chunk) == self._frame_message and chunk[0] == wire.FRAME:
            # the steady state: one whole frame per wake-up (no loop, no tail to keep)
            _, _, seq, mono, wall = _unpack_header(chunk)
            self._frame(seq, chunk[_HEADER_SIZE:], mono, wall)
            self.watch.frame(mono)
        else:
            self._rest = self._parse(chunk)

    def _parse(self, data: bytes) -> bytes:
        """Hand every complete message in `data` over; returns the incomplete tail."""
        header = wire.HEADER
        size, end = header.size, len(data)
        pos = 0
        frames = 0
        while end - pos >= size:
            kind, length, seq, mono, wall = header.unpack_from(data, pos)
            if length > MAX_PAYLOAD:
                log.error(
                    "the capture process wrote a corrupt message (%d bytes); restarting it", length
                )
                self.watch.failed(
                    self._clock(), "the audio capture process misbehaved; restarting it"
                )
                self._kill()
                self._discard = True
                return b""
            stop = pos + size + length
            if stop > end:
                break
            if kind == wire.FRAME:
                frames += 1
                self._frame(seq, data[pos + size : stop], mono, wall)
            else:
                self._event(kind, data[pos + size : stop].decode("utf-8", "replace"), seq)
            pos = stop
        if frames:
            self.watch.frame(self._clock())
        return data[pos:] if pos < end else b""

    def _frame(self, child_seq: int, pcm: bytes, mono: float, wall: float) -> None:
        seq = self._seq_base + child_seq
        self._next_seq = seq + 1
        first_mono, first_wall = self._clock_stamps.stamp(seq, mono, wall)
        self.frames_captured += 1
        self._on_frame(Frame(seq, pcm, first_wall, first_mono, self.settings.frame_ms))

    def _event(self, kind: int, text: str, child_seq: int) -> None:
        now, device = self._clock(), self.settings.device
        if kind == wire.OPENED:
            self.watch.opened(now)
            self._emit(CaptureEvent("opened", device, text))
        elif kind == wire.OVERRUN:
            self.overruns += 1
            self._next_seq = self._seq_base + child_seq + 1  # the lost period keeps its number
            self._clock_stamps.reset()
            self._emit(CaptureEvent("overrun", device, f"overrun #{self.overruns}"))
        elif kind == wire.BUSY:
            self._report(self.watch.held_by_another(now, text))
        elif kind == wire.UNSUPPORTED:
            self.watch.failed(now, explain_unsupported(self.settings, text))
        elif kind == wire.FAILED:
            self.watch.failed(now, explain_device_error(device, text))
        self._schedule()

    def _child_ended(self) -> None:
        """EOF on the pipe: the child has exited (or is about to)."""
        self._close_pipe()
        proc = self._proc
        code = proc.poll() if proc is not None else None
        if code is None and proc is not None:  # closed its stdout but lives on: end it
            self._kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(0.05)  # SIGKILL is quick; a D-state child is left behind
        self._report_ended(_exit_words(code))

    def _report_ended(self, how: str) -> None:
        self._proc = None
        self._ended.set()
        report = self.watch.ended(self._clock(), how)
        if report is not None:
            self._report(report)
        self._schedule()

    def _close_pipe(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            if self._proc is not None and self._proc.stdout is not None:
                self._proc.stdout.close()
            self._fd = -1


__all__ = [
    "CaptureEvent",
    "CaptureProcess",
    "CaptureSettings",
    "DeviceError",
    "child_command",
    "explain_device_error",
]
