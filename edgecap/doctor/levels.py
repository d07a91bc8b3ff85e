"""Signal level of recorded PCM16 audio and what it says about the microphone (no I/O)."""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass

FULL_SCALE = 32768.0
SILENCE_FLOOR_DBFS = -120.0  # reported for digital silence instead of -infinity

# A live microphone in a quiet room still shows a noise floor around -70..-50 dBFS RMS;
# below MUTED_RMS_DBFS the capture path is muted or switched off. Below QUIET_RMS_DBFS it
# works but nobody spoke or the gain is very low.
MUTED_RMS_DBFS = -80.0
QUIET_RMS_DBFS = -60.0
# Full-scale samples above this fraction mean the gain is too high (distorted speech).
CLIPPING_FRACTION = 0.001


@dataclass(frozen=True)
class Levels:
    samples: int
    seconds: float
    rms_dbfs: float
    peak_dbfs: float
    clipped_samples: int
    dc_offset: float
    """Mean sample value as a fraction of full scale."""

    @property
    def digital_silence(self) -> bool:
        return self.samples > 0 and self.peak_dbfs <= SILENCE_FLOOR_DBFS

    @property
    def clipped_fraction(self) -> float:
        return self.clipped_samples / self.samples if self.samples else 0.0

    @property
    def clipping(self) -> bool:
        return self.clipped_fraction > CLIPPING_FRACTION

    @property
    def muted(self) -> bool:
        return self.samples > 0 and self.rms_dbfs < MUTED_RMS_DBFS

    @property
    def quiet(self) -> bool:
        return self.rms_dbfs < QUIET_RMS_DBFS


def dbfs(value: float) -> float:
    """``value`` (0..1 of full scale) in dBFS, floored for silence."""
    if value <= 0:
        return SILENCE_FLOOR_DBFS
    return max(SILENCE_FLOOR_DBFS, 20.0 * math.log10(value))


def measure(pcm: bytes, sample_rate: int) -> Levels:
    """RMS and peak level, clipping and DC offset of mono PCM16 little-endian audio."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    n = len(samples)
    if n == 0:
        return Levels(0, 0.0, SILENCE_FLOOR_DBFS, SILENCE_FLOOR_DBFS, 0, 0.0)
    total = sum(samples)
    squares = math.fsum(float(s) * s for s in samples)
    highest, lowest = max(samples), min(samples)
    peak = max(highest, -lowest)
    clipped = sum(1 for s in samples if s >= 32767 or s <= -32768)
    return Levels(
        samples=n,
        seconds=n / sample_rate,
        rms_dbfs=round(dbfs(math.sqrt(squares / n) / FULL_SCALE), 1),
        peak_dbfs=round(dbfs(peak / FULL_SCALE), 1),
        clipped_samples=clipped,
        dc_offset=round(total / n / FULL_SCALE, 4),
    )
