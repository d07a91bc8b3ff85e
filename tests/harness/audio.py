"""The speech fixture manifest (PCM helpers live in edgecap.sim.microphone.pcm)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from edgecap.sim.microphone.pcm import (
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
