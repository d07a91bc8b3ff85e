"""A local SIMULATOR of OpenAI's GA Realtime transcription API (tests, demos, benchmarks).

* :class:`OpenAIRealtimeSimulator`: ``/v1/realtime?intent=transcription`` (WebSocket),
  ``POST /v1/realtime/client_secrets`` (reusable ``ek_`` secrets) and the KeyPool-style
  ``POST /v1/openai/v1/realtime/client_secrets``, on one port.
* :class:`RealtimeFault` / :func:`parse_realtime_fault`: scripted failures.

Run it with ``edgecap simulate --provider openai``; docs/simulator.md describes it.
"""

from edgecap.sim.openai.config import TranscriptionConfig, TurnDetection
from edgecap.sim.openai.faults import RealtimeFault, parse_realtime_fault
from edgecap.sim.openai.http import SECRETS_MODES, SecretsMode
from edgecap.sim.openai.protocol import NO_VAD_MODELS, TRANSCRIPTION_MODELS, RealtimeError
from edgecap.sim.openai.records import (
    CommitRecord,
    ItemRecord,
    RealtimeHandshake,
    RealtimeSessionRecord,
    SecretRequestRecord,
)
from edgecap.sim.openai.secrets import EphemeralSecret
from edgecap.sim.openai.server import OpenAIRealtimeSimulator
from edgecap.sim.openai.settings import RealtimeSettings

__all__ = [
    "NO_VAD_MODELS",
    "SECRETS_MODES",
    "TRANSCRIPTION_MODELS",
    "CommitRecord",
    "EphemeralSecret",
    "ItemRecord",
    "OpenAIRealtimeSimulator",
    "RealtimeError",
    "RealtimeFault",
    "RealtimeHandshake",
    "RealtimeSessionRecord",
    "RealtimeSettings",
    "SecretRequestRecord",
    "SecretsMode",
    "TranscriptionConfig",
    "TurnDetection",
    "parse_realtime_fault",
]
