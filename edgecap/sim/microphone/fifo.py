"""ALSA capture without a sound card: an alsa-lib `file` PCM whose input is a FIFO that a
feeder thread fills with whole periods, paced at real time.

The capture side (pyalsaaudio, arecord, a daemon subprocess) opens `device` with `env`
applied. Reads then block on the FIFO, so the reader is paced by the feeder exactly like a
real device paces it. While the queue is empty the feeder writes digital silence, so a reader
never hits EOF. The FIFO is shrunk to one page, so the feeder runs at most two periods ahead of
the reader and the start times recorded for each item are close to when the reader sees them.

The reader must read periods of exactly `period_frames` (800 = 50 ms by default): alsa-lib
fills a larger period from a partial FIFO read with stale bytes.

If the reader closes the PCM, the feeder notices at its next write and waits (queue frozen)
for the next open; a reader that re-opens within that period keeps the same connection (and
byte offsets). Periods still in the pipe when a reader closes are lost.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType

from edgecap.sim.microphone.pcm import RATE, SAMPLE_BYTES, read_wav_pcm, silence
from edgecap.sim.microphone.playback import PlayHandle

__all__ = ["AlsaFifoSource", "PlayHandle"]

# The feeder resynchronises its schedule instead of bursting when it is this late (a stalled
# reader, a paused feeder); smaller delays are caught up so the average rate stays exact.
MAX_LAG_S = 0.25
_PIPE_SIZE = 4096
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class AlsaFifoSource:
    """A capture device named `name`, defined in `<tmp>/alsa-<name>/asound.conf`."""

    def __init__(
        self,
        tmp_path: Path,
        name: str = "testcap",
        *,
        rate: int = RATE,
        period_frames: int = 800,
        infile_var: str | None = None,
    ) -> None:
        if not 0 < period_frames * SAMPLE_BYTES <= select.PIPE_BUF:
            raise ValueError(f"a period must fit one atomic FIFO write ({select.PIPE_BUF} B)")
        self.device = name
        self.rate = rate
        self.period_frames = period_frames
        self.period_bytes = period_frames * SAMPLE_BYTES
        self.period_s = period_frames / rate
        self.dir = tmp_path / f"alsa-{name}"
        self.fifo_path = self.dir / "capture.fifo"
        self.config_path = self.dir / "asound.conf"
        self.infile_var = infile_var or f"EDGECAP_TEST_ALSA_INFILE_{name.upper()}"
        self._cond = threading.Condition()
        self._queue: deque[PlayHandle] = deque()
        self._silence = bytes(self.period_bytes)
        self._stopping = False
        self._paused = False
        self._connections = 0
        self._connected = False
        self._bytes_this_connection = 0
        self._periods_total = 0
        self._lag_resyncs = 0
        self._error: BaseException | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None

    # -- configuration ----------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """Environment for the capturing process (a self-contained ALSA configuration)."""
        return {"ALSA_CONFIG_PATH": str(self.config_path), self.infile_var: str(self.fifo_path)}

    def asound_conf(self) -> str:
        return (
            f"pcm.{self.device} {{\n"
            "    type file\n"
            "    slave.pcm { type null }\n"
            '    file "/dev/null"\n'
            f"    infile {{ @func getenv vars [ {self.infile_var} ] "
            'default "/nonexistent/edgecap-test-infile-not-set" }\n'
            '    format "raw"\n'
            f'    hint {{ show on description "edgecap test capture ({self.device}, FIFO)" }}\n'
            "}\n"
        )

    # -- lifecycle --------------------------------------------------------------------------
    def prepare(self) -> AlsaFifoSource:
        """Define the device and make its FIFO, with no writer yet: a reader that opens the
        device now blocks in open(2) until `start()` (a device whose open hangs)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.asound_conf(), encoding="utf-8")
        if not self.fifo_path.exists():
            os.mkfifo(self.fifo_path, 0o600)
        return self

    def start(self) -> AlsaFifoSource:
        if self._thread is not None:
            raise RuntimeError("already started")
        self.prepare()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"alsa-feeder-{self.device}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the FIFO (the reader then sees EOF) and join the feeder thread.

        If no reader ever opened the device, the feeder is still blocked opening the FIFO;
        opening the read side here (non-blocking) releases it.
        """
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        releaser = os.open(self.fifo_path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            thread.join(timeout)
        finally:
            os.close(releaser)
        if thread.is_alive():
            raise RuntimeError(f"feeder thread for {self.device} did not stop")
        self._thread = None
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._error is not None:
            raise RuntimeError(f"feeder thread for {self.device} failed") from self._error

    def __enter__(self) -> AlsaFifoSource:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- playback queue ---------------------------------------------------------------------
    def play_pcm(self, pcm: bytes, label: str = "pcm") -> PlayHandle:
        if len(pcm) % SAMPLE_BYTES:
            raise ValueError("PCM16 data must have an even number of bytes")
        tail = len(pcm) % self.period_bytes
        padded = pcm + bytes(self.period_bytes - tail) if tail else pcm
        handle = PlayHandle(label, padded, len(pcm), self.rate)
        if not padded:
            handle._mark_done()
            return handle
        with self._cond:
            self._queue.append(handle)
        return handle

    def play_wav(self, path: Path | str) -> PlayHandle:
        return self.play_pcm(read_wav_pcm(path, self.rate), label=Path(path).name)

    def play_silence(self, seconds: float) -> PlayHandle:
        return self.play_pcm(silence(seconds, self.rate), label=f"silence {seconds} s")

    def pause(self) -> None:
        """Stop writing without closing the FIFO: the reader blocks, like a stalled device."""
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    # -- observations -----------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        with self._cond:
            return self._paused

    @property
    def connections(self) -> int:
        """How many times a reader opened the device."""
        with self._cond:
            return self._connections

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._connected

    @property
    def periods_written(self) -> int:
        with self._cond:
            return self._periods_total

    @property
    def bytes_this_connection(self) -> int:
        with self._cond:
            return self._bytes_this_connection

    @property
    def lag_resyncs(self) -> int:
        with self._cond:
            return self._lag_resyncs

    def wait_reader(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until a reader opened the device `count` times in total."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._connections >= count, timeout):
                raise TimeoutError(
                    f"{self.device}: {self._connections} of {count} reader opens after {timeout} s"
                )

    def wait_disconnected(self, timeout: float = 10.0) -> None:
        """Block until no reader holds the device (noticed at the next write)."""
        with self._cond:
            if not self._cond.wait_for(lambda: not self._connected, timeout):
                raise TimeoutError(f"{self.device}: reader still attached after {timeout} s")

    # -- feeder thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stopping:
                fd = os.open(self.fifo_path, os.O_WRONLY)  # blocks until a reader opens
                try:
                    if self._stopping:
                        return
                    with contextlib.suppress(OSError):
                        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
                    os.set_blocking(fd, False)
                    with self._cond:
                        self._connections += 1
                        self._connected = True
                        self._bytes_this_connection = 0
                        self._cond.notify_all()
                    self._feed(fd)
                finally:
                    os.close(fd)
                    with self._cond:
                        self._connected = False
                        self._cond.notify_all()
        except BaseException as exc:
            self._error = exc

    def _feed(self, fd: int) -> None:
        """Write periods on a deadline schedule until stopped or the reader goes away."""
        deadline = time.monotonic()
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    if self._paused:
                        self._cond.wait()
                        deadline = time.monotonic()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                handle = self._queue[0] if self._queue else None
            chunk = (
                handle.pcm[handle.position : handle.position + self.period_bytes]
                if handle is not None
                else self._silence
            )
            if not self._write(fd, chunk):
                return
            self._account(handle)
            deadline += self.period_s
            now = time.monotonic()
            if now - deadline > MAX_LAG_S:
                deadline = now
                with self._cond:
                    self._lag_resyncs += 1

    def _account(self, handle: PlayHandle | None) -> None:
        with self._cond:
            offset = self._bytes_this_connection
            self._bytes_this_connection += self.period_bytes
            self._periods_total += 1
            connection = self._connections
        if handle is None:
            return
        if handle.position == 0:
            handle._mark_started(offset, connection)
        handle.position += self.period_bytes
        if handle.position >= handle.nbytes:
            with self._cond:
                self._queue.popleft()
            handle._mark_done()

    def _write(self, fd: int, chunk: bytes) -> bool:
        """Write one whole period (atomic: < PIPE_BUF). False if stopping or reader gone."""
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            try:
                written = os.write(fd, chunk)
            except BlockingIOError:
                pass  # pipe full: the reader is behind or stalled
            except BrokenPipeError:
                return False
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    return False
                raise
            else:
                if written != len(chunk):
                    raise RuntimeError(f"partial FIFO write: {written} of {len(chunk)} bytes")
                return True
            for ready_fd, events in poller.poll():
                if ready_fd == self._wake_r:
                    os.read(self._wake_r, 64)
                    if self._stopping:
                        return False
                elif events & (select.POLLERR | select.POLLHUP):
                    return False
