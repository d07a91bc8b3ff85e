"""Energy-based speech detection for the streaming simulator (sans-I/O).

Audio is cut into 10 ms windows; a window is *voiced* when its RMS level is
above a threshold in dBFS. Synthetic speech (espeak-ng) has gaps of up to
~60 ms between words and ~500 ms between sentences, which a threshold around
-40 dBFS separates cleanly from digital or near-digital silence.
"""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["pcm_s16le", "pcm_mulaw"]

WINDOW_MS = 10
SILENCE_DBFS = -120.0
_FULL_SCALE = 32768.0


def _mulaw_to_linear(byte: int) -> int:
    """Decode one G.711 mu-law byte to a 16-bit linear sample."""
    inverted = ~byte & 0xFF
    exponent = (inverted >> 4) & 0x07
    magnitude = (((inverted & 0x0F) << 3) + 0x84) << exponent
    magnitude -= 0x84
    return -magnitude if inverted & 0x80 else magnitude


_MULAW_TABLE = [_mulaw_to_linear(b) for b in range(256)]


def bytes_per_sample(encoding: Encoding) -> int:
    """Bytes per mono sample for an encoding."""
    return 1 if encoding == "pcm_mulaw" else 2


def rms_dbfs(samples: array[int]) -> float:
    """RMS level of 16-bit samples in dB relative to full scale."""
    if len(samples) == 0:
        return SILENCE_DBFS
    energy = sum(s * s for s in samples) / len(samples)
    if energy <= 0:
        return SILENCE_DBFS
    return 20.0 * math.log10(math.sqrt(energy) / _FULL_SCALE)


@dataclass(frozen=True)
class Window:
    """One 10 ms analysis window; times in ms from the start of the stream."""

    start_ms: float
    end_ms: float
    dbfs: float
    voiced: bool


class EnergySegmenter:
    """Turn a byte stream of mono audio into classified 10 ms windows."""

    def __init__(
        self,
        sample_rate: int,
        encoding: Encoding = "pcm_s16le",
        threshold_dbfs: float = -40.0,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        self.sample_rate = sample_rate
        self.encoding: Encoding = encoding
        self.threshold_dbfs = threshold_dbfs
        self._window_samples = max(1, sample_rate * WINDOW_MS // 1000)
        self._carry = b""  # an odd trailing byte of PCM16
        self._pending: array[int] = array("h")
        self._windowed_samples = 0
        self._received_samples = 0

    @property
    def position_ms(self) -> float:
        """Duration of all audio fed so far, in ms."""
        return self._received_samples * 1000.0 / self.sample_rate

    def feed(self, data: bytes) -> list[Window]:
        """Add audio; return the windows it completed (a partial window waits)."""
        samples = self._decode(data)
        self._received_samples += len(samples)
        self._pending.extend(samples)
        windows: list[Window] = []
        size = self._window_samples
        offset = 0
        while len(self._pending) - offset >= size:
            chunk = self._pending[offset : offset + size]
            offset += size
            start = self._windowed_samples * 1000.0 / self.sample_rate
            self._windowed_samples += size
            end = self._windowed_samples * 1000.0 / self.sample_rate
            level = rms_dbfs(chunk)
            windows.append(Window(start, end, level, level > self.threshold_dbfs))
        if offset:
            del self._pending[:offset]
        return windows

    def _decode(self, data: bytes) -> array[int]:
        if self.encoding == "pcm_mulaw":
            return array("h", [_MULAW_TABLE[b] for b in data])
        data = self._carry + data
        usable = len(data) - len(data) % 2
        self._carry = data[usable:]
        samples = array("h", data[:usable])
        if sys.byteorder == "big":  # pragma: no cover - little-endian test hosts
            samples.byteswap()
        return samples
