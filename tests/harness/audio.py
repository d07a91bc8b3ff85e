"""PCM helpers (16-bit little-endian mono) and the speech fixture manifest."""

from __future__ import annotations

import json
import math
import sys
import wave
from array import array
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

RATE = 16000
SAMPLE_BYTES = 2
SPEECH_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "speech"


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
