"""ALSA capture for the benchmark's own clients (the floor and the SDK client).

Opens the device exactly as edgecap does (16 kHz mono S16_LE, 800-frame = 50 ms periods,
4 periods) and yields whole periods; imports nothing but pyalsaaudio, so the clients carry
no edgecap code.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from typing import Any

RATE = 16000
PERIOD_FRAMES = 800  # 50 ms
PERIOD_BYTES = PERIOD_FRAMES * 2


def open_capture(device: str, period_frames: int = PERIOD_FRAMES) -> Any:
    import alsaaudio

    return alsaaudio.PCM(
        type=alsaaudio.PCM_CAPTURE,
        mode=alsaaudio.PCM_NORMAL,
        rate=RATE,
        channels=1,
        format=alsaaudio.PCM_FORMAT_S16_LE,
        periodsize=period_frames,
        periods=4,
        device=device,
    )


def stop_on_sigterm() -> threading.Event:
    """An event set by SIGTERM or SIGINT (checked between reads; a read takes <= 50 ms)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def periods(pcm: Any, stop: threading.Event, size: int = PERIOD_BYTES) -> Iterator[bytes]:
    """Whole periods of `size` bytes until `stop` is set."""
    while not stop.is_set():
        n, data = pcm.read()
        if n > 0 and len(data) == size:
            yield bytes(data)
