"""Capture-rate PCM to the 24 kHz OpenAI takes (libsoxr's streaming resampler).

The voice gate's detector hears 16 kHz, so edgecap captures at 16 kHz for OpenAI too and
resamples what it sends. One `Upsampler` per session: libsoxr keeps the filter state
between messages, so 50 ms frames join without clicks, and a new session (a replay after a
drop) starts clean. python-soxr (with NumPy) is imported only here, only when the OpenAI
provider resamples: an AssemblyAI device never loads it (`pip install 'edgecap[openai]'`).
"""

from __future__ import annotations

from typing import Any

WIRE_RATE = 24000


class Upsampler:
    def __init__(self, in_rate: int, out_rate: int = WIRE_RATE) -> None:
        try:
            import numpy
            import soxr
        except ImportError as exc:  # pragma: no cover - an install without the extra
            raise RuntimeError(
                f"resampling {in_rate} Hz capture to OpenAI's {out_rate} Hz needs python-soxr: "
                "pip install 'edgecap[openai]' (or capture at 24000 Hz with session.gate = "
                '"always")'
            ) from exc
        self._numpy: Any = numpy
        self._stream: Any = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16")

    def __call__(self, pcm: bytes) -> bytes:
        """PCM16 mono little-endian at the capture rate -> the same at 24 kHz."""
        samples = self._numpy.frombuffer(pcm, dtype="<i2")
        out: bytes = self._stream.resample_chunk(samples).astype("<i2").tobytes()
        return out
