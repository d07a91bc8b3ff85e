"""PCM helpers for the simulated microphone: 16-bit little-endian mono."""

from __future__ import annotations

import math
import sys
import wave
from array import array
from pathlib import Path

RATE = 16000
SAMPLE_BYTES = 2


def read_wav_pcm(path: Path | str, rate: int = RATE) -> bytes:
    """The PCM data of a WAV file, which must be `rate` Hz, mono, 16-bit PCM."""
    with wave.open(str(path), "rb") as wav:
        fmt = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getcomptype())
        if fmt != (rate, 1, SAMPLE_BYTES, "NONE"):
            raise ValueError(
                f"{path}: need {rate} Hz mono 16-bit PCM, got rate={fmt[0]} channels={fmt[1]} "
                f"sample_width={fmt[2]} compression={fmt[3]}"
            )
        return wav.readframes(wav.getnframes())


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(round(seconds * rate) * SAMPLE_BYTES)


def tone(seconds: float, freq: float, amplitude: float = 0.5, rate: int = RATE) -> bytes:
    """A sine wave; `amplitude` is a fraction of full scale (0..1)."""
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError("amplitude must be within 0..1")
    peak = amplitude * 32767
    samples = array(
        "h",
        (
            round(peak * math.sin(2 * math.pi * freq * i / rate))
            for i in range(round(seconds * rate))
        ),
    )
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def pcm_duration_s(pcm: bytes, rate: int = RATE) -> float:
    return len(pcm) / (rate * SAMPLE_BYTES)
