"""A simulated microphone: real ALSA capture (alsa-lib's `file` plugin) fed from a FIFO.

Used by the tests, the demo and the benchmarks: the daemon opens an ordinary ALSA PCM and
alsa-lib reads whatever this feeder writes into the FIFO, paced at real time.
"""

from edgecap.sim.microphone.fifo import AlsaFifoSource
from edgecap.sim.microphone.pcm import RATE, SAMPLE_BYTES, read_wav_pcm, silence, tone
from edgecap.sim.microphone.playback import PlayHandle

__all__ = [
    "RATE",
    "SAMPLE_BYTES",
    "AlsaFifoSource",
    "PlayHandle",
    "read_wav_pcm",
    "silence",
    "tone",
]
