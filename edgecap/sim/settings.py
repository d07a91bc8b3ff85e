"""The streaming simulator's knobs, and what a session needs from its simulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection

from edgecap.sim.credentials import TokenStore
from edgecap.sim.params import SessionParams
from edgecap.sim.records import Notifier
from edgecap.sim.speakers import DEFAULT_REVISED_SPEAKERS, DEFAULT_SPEAKERS, TurnExtras
from edgecap.sim.turns import Script


@dataclass
class StreamingSettings:
    """Knobs of the streaming simulator; may be changed while it runs.

    A new session reads them when it begins, except ``revised_speakers`` (read at
    ``Terminate``) and the pacing fields (read on every audio message).
    """

    reported_model: str | None = None  # Begin reports this model instead (drift tests)
    default_model: str = "universal-3-6-pro"  # reported when speech_model is absent
    eot_confidence: float = 0.6
    max_rate: float | None = 1.25  # None disables the pacing check
    rate_slack_seconds: float = 2.0
    speech_threshold_dbfs: float = -40.0
    ms_per_word: float = 320.0
    max_session_seconds: float | None = None  # caps every session (short 3008 tests)
    inactivity_timeout_seconds: float | None = None  # forced on every session (tests)
    seed: int = 0
    # speaker_labels=true: live labels by turn_order (cycled), and the labels the
    # SpeakerRevision before Termination gives them (None: never send one)
    speakers: tuple[str, ...] = DEFAULT_SPEAKERS
    revised_speakers: tuple[str, ...] | None = DEFAULT_REVISED_SPEAKERS
    # language_detection=true: None reports the first of language_codes, else
    # language_code, else "en"
    detected_language: str | None = None
    language_confidence: float = 0.93


@dataclass
class SessionEnv:
    """Shared state a session needs from its simulator."""

    settings: StreamingSettings
    script: Script
    tokens: TokenStore
    notifier: Notifier
    clock: Callable[[], float] = time.time
    stalled: set[ServerConnection] = field(default_factory=set)


def turn_extras(params: SessionParams, settings: StreamingSettings) -> TurnExtras:
    """What the session's turns carry beyond the transcript (speakers, language)."""
    language: str | None = None
    if params.language_detection:
        codes = params.language_codes or []
        language = (
            settings.detected_language or (codes[0] if codes else None) or params.language_code
        ) or "en"
    return TurnExtras(
        speaker_labels=bool(params.speaker_labels),
        speakers=settings.speakers,
        max_speakers=params.max_speakers,
        language=language,
        language_confidence=settings.language_confidence,
    )
