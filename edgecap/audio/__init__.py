"""Audio capture: frames and the ALSA adapter."""

from edgecap.audio.frame import CaptureClock, Frame

__all__ = ["CaptureClock", "Frame"]
