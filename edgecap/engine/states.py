"""The engine's states and reasons (what the status says, why a session ended)."""

from __future__ import annotations

from enum import StrEnum


class EngineState(StrEnum):
    """What the engine reports in the status (`state`)."""

    IDLE = "idle"  # no session: no audio, or the gate does not want one
    LISTENING = "listening"  # the voice gate waits for speech; no session is open
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    AUTH_FAILED = "auth_failed"
    DEGRADED = "degraded"
    BUDGET_EXHAUSTED = "budget_exhausted"
    MUTED = "muted"  # the privacy mute is on: no audio leaves the device


class CloseReason(StrEnum):
    """Why edgecap itself ends a session."""

    STOP = "stop"  # the daemon stops
    IDLE = "idle"  # the voice gate heard no speech for idle_close_seconds
    BUDGET = "budget"  # the daily budget is used up
    AUDIO_LOST = "audio"  # capture stopped delivering (or is being restarted)
    QUIET = "quiet"  # rotation before the cap, right after a final turn
    SILENCE = "silence"  # rotation before the cap, nobody speaking
    DEADLINE = "deadline"  # rotation at the deadline, whatever is happening
    MUTE = "mute"  # the privacy mute: ended at once, nothing buffered is sent

    @property
    def rotation(self) -> bool:
        return self in (CloseReason.QUIET, CloseReason.SILENCE, CloseReason.DEADLINE)


class EndedBy(StrEnum):
    """Who ended a session."""

    STOP = "stop"  # edgecap closed it (stop, idle, budget, audio lost): drained first
    ROTATE = "rotate"  # edgecap rotated it before the cap
    SERVER = "server"  # the server or the network ended it
