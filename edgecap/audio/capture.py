"""ALSA capture adapter: a dedicated thread doing blocking pyalsaaudio reads.

Frames (and `CaptureEvent`s, in order) are handed to the asyncio loop through a queue and
a byte on a non-blocking pipe the loop watches: one write and one read per frame, cheaper
than `call_soon_threadsafe` (a handle, a context copy and a self-pipe round trip each).
While the daemon is only listening for speech (no session, voice gate), quiet frames wait
up to half a second and go with the next wake-up, so a quiet room wakes the loop twice a
second instead of twenty times. The thread never waits for the loop, so a slow consumer
cannot stall the device. A device that is missing or vanishes is reported through
`on_event` and re-opened with exponential backoff inside the thread (tenacity); the daemon
does not exit. An overrun (`read()` returning -EPIPE) is counted and reported; the clock
re-anchors on the next period.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from edgecap.audio.frame import CaptureClock, Frame
from edgecap.audio.level import peak_below

log = logging.getLogger(__name__)

CaptureEventKind = Literal["opened", "unavailable", "overrun", "closed"]


@dataclass(frozen=True, slots=True)
class CaptureEvent:
    kind: CaptureEventKind
    device: str
    detail: str = ""
    retry_in: float | None = None


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
    `AlsaCapture.hold_quiet` is set (0: never; the voice gate's `vad_quiet_dbfs`)."""
    quiet_hold_ms: int = 500
    """The longest a quiet frame waits."""

    @property
    def period_frames(self) -> int:
        return self.sample_rate * self.frame_ms // 1000

    @property
    def period_bytes(self) -> int:
        return self.period_frames * 2


def explain_device_error(device: str, error: BaseException) -> str:
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
    return f"audio device {device!r} failed: {text}"


def open_pcm(settings: CaptureSettings) -> Any:
    """Open the capture PCM with the configured format and check what ALSA granted."""
    import alsaaudio  # imported lazily: `edgecap check-config` must work without it

    try:
        pcm = alsaaudio.PCM(
            type=alsaaudio.PCM_CAPTURE,
            mode=alsaaudio.PCM_NORMAL,
            rate=settings.sample_rate,
            channels=1,
            format=alsaaudio.PCM_FORMAT_S16_LE,
            periodsize=settings.period_frames,
            periods=settings.periods,
            device=settings.device,
        )
    except alsaaudio.ALSAAudioError as exc:
        raise DeviceError(explain_device_error(settings.device, exc)) from exc
    info = pcm.info()
    granted = (info.get("rate"), info.get("channels"), info.get("period_size"))
    wanted = (settings.sample_rate, 1, settings.period_frames)
    if granted != wanted:
        pcm.close()
        raise DeviceError(
            f"audio device {settings.device!r} does not support {settings.sample_rate} Hz mono "
            f"S16_LE in {settings.frame_ms} ms periods (granted rate/channels/period = "
            f"{granted}); use a 'plughw:' or 'plug' device so ALSA converts"
        )
    return pcm


class AlsaCapture:
    """Runs the capture thread; delivers `Frame`s and `CaptureEvent`s on the event loop."""

    def __init__(
        self,
        settings: CaptureSettings,
        loop: asyncio.AbstractEventLoop,
        on_frame: Callable[[Frame], None],
        on_event: Callable[[CaptureEvent], None],
        *,
        opener: Callable[[CaptureSettings], Any] = open_pcm,
    ) -> None:
        self.settings = settings
        self._loop = loop
        self._on_frame = on_frame
        self._on_event = on_event
        self._opener = opener
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.overruns = 0
        self.frames_captured = 0
        self._queue: deque[Frame | CaptureEvent] = deque()  # thread -> loop, in order
        self._rfd = self._wfd = -1  # the wake-up pipe, from `start()` until the thread ends
        self.hold_quiet = False
        """Set on the loop while it is only listening (no session, voice gate): quiet frames
        then wait in the queue, up to `quiet_hold_ms`, and the loop is woken once for them
        all, or at once by the next frame that is not quiet."""

    def start(self) -> None:
        """Start the thread (call on the loop: it registers the hand-off pipe there)."""
        self._rfd, self._wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._loop.add_reader(self._rfd, self._deliver)
        self._thread = threading.Thread(target=self._run, name="edgecap-capture", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop; a read blocked on a stalled device is abandoned."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- loop side ---------------------------------------------------------------------

    def _deliver(self) -> None:
        """The pipe is readable: hand what the thread queued to the callbacks, in order."""
        try:  # (per frame: no context manager)  # noqa: SIM105
            os.read(self._rfd, 4096)
        except BlockingIOError:  # a wake-up consumed by an earlier read
            pass
        queue = self._queue
        while queue:
            item = queue.popleft()
            if type(item) is Frame:
                self._on_frame(item)
            else:
                assert isinstance(item, CaptureEvent)
                self._on_event(item)

    def _close_pipe(self) -> None:
        """The thread has ended (on the loop): no more wake-ups can come."""
        self._loop.remove_reader(self._rfd)
        self._deliver()
        os.close(self._rfd)
        os.close(self._wfd)

    # -- thread side -------------------------------------------------------------------

    def _post(self, item: Frame | CaptureEvent) -> None:
        """Queue for the loop and wake it: one byte on the pipe (cheaper than
        `call_soon_threadsafe`, which also builds a handle and a context per frame)."""
        self._queue.append(item)
        try:  # (per frame: no context manager)  # noqa: SIM105
            os.write(self._wfd, b"\0")
        except BlockingIOError:  # the loop is far behind; it drains the queue anyway
            pass

    def _emit(self, event: CaptureEvent) -> None:
        if not self._loop.is_closed():
            self._post(event)

    def _run(self) -> None:
        try:
            self._capture()
        finally:
            try:
                self._loop.call_soon_threadsafe(self._close_pipe)
            except RuntimeError:  # the loop is closed: nobody reads the pipe any more
                os.close(self._rfd)
                os.close(self._wfd)

    def _capture(self) -> None:
        while not self._stop.is_set():
            pcm = self._open_with_retry()
            if pcm is None:
                return
            try:
                self._read_loop(pcm)
            except DeviceError as exc:
                self._emit(CaptureEvent("unavailable", self.settings.device, str(exc)))
            finally:
                pcm.close()
        self._emit(CaptureEvent("closed", self.settings.device))

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else None
        self._emit(CaptureEvent("unavailable", self.settings.device, str(exc), retry_in=delay))

    def _open_with_retry(self) -> Any | None:
        s = self.settings
        retrying = Retrying(
            retry=retry_if_exception_type(DeviceError),
            wait=wait_exponential_jitter(initial=s.reopen_min_seconds, max=s.reopen_max_seconds),
            sleep=self._sleep_unless_stopped,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                if self._stop.is_set():
                    return None
                with attempt:
                    pcm = self._opener(s)
        except DeviceError:  # pragma: no cover - only when stopping mid-retry
            return None
        if self._stop.is_set():
            pcm.close()
            return None
        self._emit(CaptureEvent("opened", s.device, f"{s.sample_rate} Hz mono S16_LE"))
        return pcm

    def _sleep_unless_stopped(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise DeviceError("stopping")

    def _read_loop(self, pcm: Any) -> None:
        s = self.settings
        clock = CaptureClock(s.frame_ms / 1000)
        want = s.period_bytes
        quiet, hold_max, held = s.quiet_limit, s.quiet_hold_ms // s.frame_ms, 0
        while not self._stop.is_set():
            try:
                n, data = pcm.read()
            except Exception as exc:  # alsaaudio.ALSAAudioError: the device vanished
                raise DeviceError(explain_device_error(s.device, exc)) from exc
            if n < 0:
                if n == -errno.EPIPE:
                    self.overruns += 1
                    clock.reset()
                    self._seq += 1  # a period was lost: keep the gap visible in seq
                    self._emit(CaptureEvent("overrun", s.device, f"overrun #{self.overruns}"))
                    continue
                raise DeviceError(f"audio device {s.device!r} read failed: error {n}")
            if len(data) != want:
                # pyalsaaudio returns whole periods in normal mode; anything else is
                # a device problem, never forwarded as a short frame.
                log.debug("discarding %d-byte read from %s", len(data), s.device)
                continue
            mono, wall = clock.stamp(self._seq, time.monotonic(), time.time())
            frame = Frame(self._seq, bytes(data), wall, mono, s.frame_ms)
            self._seq += 1
            self.frames_captured += 1
            if quiet and self.hold_quiet and held + 1 < hold_max and peak_below(frame.pcm, quiet):
                self._queue.append(frame)  # no wake-up: it goes with the next one
                held += 1
            else:
                self._post(frame)
                held = 0
