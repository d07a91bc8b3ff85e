"""The speech fixture manifest (PCM helpers live in edgecap.sim.microphone.pcm)."""

from __future__ import annotations

import json
import math
import random
import sys
from array import array
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from edgecap.sim.microphone.pcm import (
    RATE,
    read_wav_pcm,
)

SPEECH_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "speech"


@dataclass(frozen=True)
class SpeechFixture:
    path: Path
    text: str
    duration_ms: int
    leading_silence_ms: int = 0
    trailing_silence_ms: int = 0
    max_internal_silence_ms: int = 0

    @property
    def first_word(self) -> str:
        return self.text.split()[0]

    @cached_property
    def pcm(self) -> bytes:
        return read_wav_pcm(self.path)


def load_manifest(directory: Path = SPEECH_DIR) -> list[SpeechFixture]:
    """The fixtures listed in `directory/manifest.json` (made by scripts/make-fixtures)."""
    entries = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    return [
        SpeechFixture(
            path=directory / entry["file"],
            text=entry["text"],
            duration_ms=int(entry["duration_ms"]),
            leading_silence_ms=int(entry.get("leading_silence_ms", 0)),
            trailing_silence_ms=int(entry.get("trailing_silence_ms", 0)),
            max_internal_silence_ms=int(entry.get("max_internal_silence_ms", 0)),
        )
        for entry in entries
    ]


def room_noise(
    seconds: float,
    *,
    noise_dbfs: float | None = -50.0,
    hum_dbfs: float | None = None,
    hum_hz: float = 100.0,
    seed: int = 0,
    rate: int = RATE,
) -> bytes:
    """A quiet room as PCM16: white (Gaussian) noise and/or a mains hum (a sine).

    Levels are RMS in dBFS relative to a full-scale sine (AES17): a sine at 0 dBFS peaks
    at full scale. `None` leaves that component out; samples are clipped to 16 bits.
    """
    full_sine_rms = 32767 / math.sqrt(2)
    sigma = 0.0 if noise_dbfs is None else full_sine_rms * 10 ** (noise_dbfs / 20)
    peak = 0.0 if hum_dbfs is None else 32767 * 10 ** (hum_dbfs / 20)
    rng = random.Random(seed)
    step = 2 * math.pi * hum_hz / rate
    samples = array(
        "h",
        (
            max(-32768, min(32767, round(rng.gauss(0.0, sigma) + peak * math.sin(step * i))))
            for i in range(round(seconds * rate))
        ),
    )
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()
