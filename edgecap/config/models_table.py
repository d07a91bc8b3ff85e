"""What each AssemblyAI v3 streaming model accepts, and its server-side defaults (pure data).

Sources: AssemblyAI's streaming API reference and model pages (2026), the
``usm-streaming*.yml`` specs, and the notes in the project's protocol reference. The server
ignores query parameters a model does not use, silently, so the configuration refuses them
instead (see ``edgecap.config.streaming``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

SpeechModel = Literal[
    "universal-streaming-english",
    "universal-streaming-multilingual",
    "u3-rt-pro",
    "universal-3-5-pro",
    "universal-3-6-pro",
]
SPEECH_MODELS: tuple[SpeechModel, ...] = get_args(SpeechModel)
DEPRECATED_SPEECH_MODELS = MappingProxyType({"u3-pro": "u3-rt-pro"})

StreamingMode = Literal["min_latency", "balanced", "max_accuracy"]
# Turn-silence defaults (min, max) in ms of the Universal-3.5/3.6 Pro presets; with
# speaker_labels the diarization profile replaces the preset. For reference: edgecap does
# not send these (the server applies them), see ``ModelCaps.min_turn_silence``.
MODE_PRESETS = MappingProxyType(
    {"min_latency": (128, 640), "balanced": (128, 1280), "max_accuracy": (512, 2560)}
)
DIARIZATION_PRESET = (640, 768)

MAX_KEYTERMS = 100
MAX_KEYTERM_CHARS = 50
MAX_PROMPT_CHARS = 1750  # AssemblyAI's limit for prompt (and agent_context) on the Pro models
MAX_LANGUAGE_CODES = 10


@dataclass(frozen=True, slots=True)
class ModelCaps:
    """One speech model: the optional parameters it uses and the defaults the server applies."""

    name: SpeechModel
    is_pro: bool
    """A Universal-3 Pro model: punctuation-based turn ends, always-formatted finals."""
    language_detection: bool
    language_codes: bool
    """``language_code`` / ``language_codes`` (language steering)."""
    prompt: bool
    mode: bool
    voice_focus: bool
    min_turn_silence: int | None
    """Server default in ms; None: set by the ``mode`` preset (edgecap then sends nothing)."""
    max_turn_silence: int | None
    vad_threshold: float
    vad_threshold_speaker_labels: float
    """The default when ``speaker_labels`` is on (the diarization profile)."""

    @property
    def format_turns(self) -> bool:
        """``format_turns`` has an effect (Universal-Streaming only)."""
        return not self.is_pro

    @property
    def end_of_turn_confidence_threshold(self) -> bool:
        """``end_of_turn_confidence_threshold`` has an effect (Universal-Streaming only)."""
        return not self.is_pro


def _universal_streaming(name: SpeechModel, *, multilingual: bool) -> ModelCaps:
    return ModelCaps(
        name,
        is_pro=False,
        language_detection=multilingual,
        language_codes=False,
        prompt=False,
        mode=False,
        voice_focus=False,
        min_turn_silence=400,
        max_turn_silence=1280,
        vad_threshold=0.4,
        vad_threshold_speaker_labels=0.4,
    )


def _pro_3x(name: SpeechModel) -> ModelCaps:
    return ModelCaps(
        name,
        is_pro=True,
        language_detection=True,
        language_codes=True,
        prompt=True,
        mode=True,
        voice_focus=True,
        min_turn_silence=None,
        max_turn_silence=None,
        vad_threshold=0.2,
        vad_threshold_speaker_labels=0.5,
    )


MODEL_CAPS: MappingProxyType[SpeechModel, ModelCaps] = MappingProxyType(
    {
        "universal-streaming-english": _universal_streaming(
            "universal-streaming-english", multilingual=False
        ),
        "universal-streaming-multilingual": _universal_streaming(
            "universal-streaming-multilingual", multilingual=True
        ),
        # Universal-3 Pro (legacy since July 2026): no mode presets and no language steering.
        "u3-rt-pro": ModelCaps(
            "u3-rt-pro",
            is_pro=True,
            language_detection=True,
            language_codes=False,
            prompt=True,
            mode=False,
            voice_focus=True,
            min_turn_silence=100,
            max_turn_silence=1000,
            vad_threshold=0.3,
            vad_threshold_speaker_labels=0.3,
        ),
        "universal-3-5-pro": _pro_3x("universal-3-5-pro"),
        "universal-3-6-pro": _pro_3x("universal-3-6-pro"),
    }
)


def model_caps(model: SpeechModel) -> ModelCaps:
    return MODEL_CAPS[model]


def models_with(feature: str) -> tuple[SpeechModel, ...]:
    """The models whose ``ModelCaps`` attribute ``feature`` is true, in table order."""
    return tuple(name for name, caps in MODEL_CAPS.items() if getattr(caps, feature))


def default_turn_silence(model: SpeechModel) -> tuple[int | None, int | None]:
    """(min_turn_silence, max_turn_silence) the server uses when none is sent; None: preset."""
    caps = MODEL_CAPS[model]
    return caps.min_turn_silence, caps.max_turn_silence


def default_vad_threshold(model: SpeechModel, *, speaker_labels: bool = False) -> float:
    caps = MODEL_CAPS[model]
    return caps.vad_threshold_speaker_labels if speaker_labels else caps.vad_threshold
