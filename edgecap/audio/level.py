"""Peak level of PCM16 audio, cheaply (no I/O): what the voice gate's quiet skip and the
capture child's quiet hand-off use to tell a quiet frame without running a detector."""

from __future__ import annotations

__all__ = ["level_limit", "peak_below"]


def level_limit(dbfs: float) -> int:
    """The PCM16 sample magnitude of a peak level in dBFS (at least 1: -96 dBFS and below
    mean "exact digital silence only")."""
    return max(1, round(32768 * 10 ** (dbfs / 20)))


def peak_below(pcm: bytes, limit: int) -> bool:
    """Whether every sample's magnitude is below `limit`: S16_LE, the capture format (the
    exact path reads samples in the host's order: little-endian on every supported board)."""
    if limit <= 256 and pcm[1::2].translate(None, b"\x00\xff"):
        return False  # a sample of magnitude >= 256 has a high byte other than 00/ff (fast)
    samples = memoryview(pcm).cast("h")
    return max(samples, default=0) < limit and min(samples, default=0) > -limit
