"""A queued piece of audio for AlsaFifoSource, with the times at which it was played."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from edgecap.sim.microphone.pcm import SAMPLE_BYTES


class PlayHandle:
    """One queued item. Times are filled in by the feeder thread."""

    def __init__(self, label: str, pcm: bytes, data_bytes: int, rate: int) -> None:
        self.label = label
        self.pcm = pcm
        self.nbytes = len(pcm)  # padded to whole periods
        self.data_bytes = data_bytes  # before padding
        self.rate = rate
        self.position = 0
        self.started = threading.Event()
        self.done = threading.Event()
        self.started_monotonic: float | None = None
        self.started_wall: float | None = None
        self.finished_monotonic: float | None = None
        self.finished_wall: float | None = None
        # Bytes the current reader had been sent before this item began (its audio time).
        self.start_offset_bytes: int | None = None
        self.connection: int | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    @property
    def duration_s(self) -> float:
        return self.nbytes / (self.rate * SAMPLE_BYTES)

    @property
    def start_offset_s(self) -> float | None:
        """Audio time (seconds since the reader opened the PCM) at which this item begins."""
        if self.start_offset_bytes is None:
            return None
        return self.start_offset_bytes / (self.rate * SAMPLE_BYTES)

    def wait(self, timeout: float) -> None:
        """Block until the item's last byte was written; TimeoutError otherwise."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"{self.label}: not played within {timeout} s ({self._progress()})")

    def wait_started(self, timeout: float) -> None:
        if not self.started.wait(timeout):
            raise TimeoutError(f"{self.label}: not started within {timeout} s")

    # A timeout argument (not asyncio.timeout) so the error can report the progress made.
    async def await_done(self, timeout: float) -> None:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self.done.is_set():
                return
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{self.label}: not played within {timeout} s ({self._progress()})"
            ) from None

    def _progress(self) -> str:
        return f"{self.position} of {self.nbytes} bytes written"

    def _mark_started(self, offset: int, connection: int) -> None:
        self.started_monotonic = time.monotonic()
        self.started_wall = time.time()
        self.start_offset_bytes = offset
        self.connection = connection
        self.started.set()

    def _mark_done(self) -> None:
        self.finished_monotonic = time.monotonic()
        self.finished_wall = time.time()
        with self._lock:
            self.done.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(_resolve, future)

    def __repr__(self) -> str:
        return f"PlayHandle({self.label!r}, {self._progress()})"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
