"""The OpenAI Realtime simulator's knobs, and what a session needs from its simulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection

from edgecap.sim.records import Notifier
from edgecap.sim.turns import Script

DEFAULT_MAX_SESSION_SECONDS = 3600.0
"""OpenAI documents a 60-minute maximum for Realtime sessions (earlier 15, then 30)."""

FAILED_TEXT = "Input audio transcription failed (simulated)."


@dataclass
class RealtimeSettings:
    """Knobs of the simulator; may be changed while it runs (a session reads them when it
    is created, the detection fields when its buffer is built)."""

    max_session_seconds: float = DEFAULT_MAX_SESSION_SECONDS
    speech_threshold_dbfs: float = -40.0
    ms_per_word: float = 320.0  # live deltas: one word per this much speech
    min_speech_ms: float = 80.0  # shorter voiced stretches are not utterances
    manual_gap_ms: float = 500.0  # without turn detection: silence between utterances
    live_deltas: bool = True  # realtime-only models: deltas while speech arrives
    failed_message: str = FAILED_TEXT


@dataclass
class RealtimeEnv:
    """Shared state a session needs from its simulator."""

    settings: RealtimeSettings
    script: Script
    notifier: Notifier
    clock: Callable[[], float] = time.time
    stalled: set[ServerConnection] = field(default_factory=set)
