"""A transcription session's configuration and ``session.update`` validation (sans-I/O).

The real server is strict: unknown keys, wrong types and out-of-range values are
``invalid_request_error`` events naming the parameter (``param``), and the session stays
as it was. The simulator applies the same rules to the fields of the GA transcription
session (``session.audio.input.{format, transcription, noise_reduction, turn_detection}``
and ``session.include``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from edgecap.sim.openai.protocol import (
    NO_VAD_MODELS,
    PCM_RATE,
    REALTIME_UPDATE_REFUSED_TEXT,
    TRANSCRIPTION_MODELS,
    TURN_DETECTION_REFUSED_TEXT,
    Message,
    RealtimeError,
    above_max,
    below_min,
    invalid_type,
    invalid_value,
    missing_parameter,
    unknown_parameter,
)

FormatType = Literal["audio/pcm", "audio/pcmu"]
VadType = Literal["server_vad", "semantic_vad"]

FORMAT_TYPES: tuple[str, ...] = ("audio/pcm", "audio/pcmu", "audio/pcma")
NOISE_REDUCTION_TYPES: tuple[str, ...] = ("near_field", "far_field")
DELAYS: tuple[str, ...] = ("minimal", "low", "medium", "high", "xhigh")
EAGERNESS_SILENCE_MS: dict[str, int] = {"low": 1200, "medium": 700, "auto": 700, "high": 300}
"""semantic_vad is simulated as server_vad with a silence that follows ``eagerness``."""
INCLUDE_VALUES: tuple[str, ...] = ("item.input_audio_transcription.logprobs",)
_VAD_EXTRAS = ("idle_timeout_ms", "create_response", "interrupt_response")


@dataclass(frozen=True)
class TurnDetection:
    """``audio.input.turn_detection`` when not null."""

    type: VadType = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    eagerness: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def wire(self) -> Message:
        if self.type == "semantic_vad":
            return {"type": "semantic_vad", "eagerness": self.eagerness or "auto", **self.extras}
        return {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            **self.extras,
        }


DEFAULT_VAD = TurnDetection()


@dataclass(frozen=True)
class TranscriptionConfig:
    """The effective configuration of a transcription session."""

    format_type: FormatType = "audio/pcm"
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    delay: str | None = None
    noise_reduction: str | None = None
    turn_detection: TurnDetection | None = DEFAULT_VAD
    include: tuple[str, ...] | None = None

    @property
    def ready(self) -> bool:
        """A transcription model is set: audio can be transcribed."""
        return self.model is not None

    @property
    def sample_rate(self) -> int:
        return PCM_RATE if self.format_type == "audio/pcm" else 8000

    @property
    def bytes_per_ms(self) -> float:
        return self.sample_rate * (2 if self.format_type == "audio/pcm" else 1) / 1000.0

    def session_object(self, session_id: str, expires_at: int) -> Message:
        """The ``session`` of ``session.created`` / ``session.updated``."""
        audio_format: Message = {"type": self.format_type}
        if self.format_type == "audio/pcm":
            audio_format["rate"] = PCM_RATE
        transcription: Message | None = None
        if self.model is not None:
            transcription = {"model": self.model}
            for key in ("language", "prompt", "delay"):
                if getattr(self, key) is not None:
                    transcription[key] = getattr(self, key)
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id,
            "expires_at": expires_at,
            "audio": {
                "input": {
                    "format": audio_format,
                    "transcription": transcription,
                    "noise_reduction": (
                        {"type": self.noise_reduction} if self.noise_reduction else None
                    ),
                    "turn_detection": (
                        self.turn_detection.wire() if self.turn_detection is not None else None
                    ),
                }
            },
            "include": list(self.include) if self.include is not None else None,
            "simulator": True,
        }


def apply_session_update(current: TranscriptionConfig, session: object) -> TranscriptionConfig:
    """``current`` changed by a ``session.update``'s ``session``; :class:`RealtimeError` for
    anything the real server refuses (the current configuration then stays)."""
    obj = _object(session, "session")
    _known(obj, ("type", "audio", "include", "object", "id", "expires_at"), "session")
    if "type" not in obj:
        raise missing_parameter("session.type")
    if obj["type"] == "realtime":
        raise RealtimeError(REALTIME_UPDATE_REFUSED_TEXT, param="session.type")
    if obj["type"] != "transcription":
        raise invalid_value(obj["type"], ("transcription", "realtime"), "session.type")
    changes: dict[str, Any] = {}
    if "include" in obj:
        changes["include"] = _include(obj["include"])
    audio = _object(obj.get("audio", {}), "session.audio")
    _known(audio, ("input",), "session.audio")
    given = _object(audio.get("input", {}), "session.audio.input")
    _known(
        given,
        ("format", "transcription", "noise_reduction", "turn_detection"),
        "session.audio.input",
    )
    if "format" in given:
        changes["format_type"] = _format(given["format"])
    if "noise_reduction" in given:
        changes["noise_reduction"] = _noise_reduction(given["noise_reduction"])
    if "transcription" in given:
        changes.update(_transcription(given["transcription"]))
    updated = dataclasses.replace(current, **changes)
    return _with_turn_detection(updated, given)


def _with_turn_detection(config: TranscriptionConfig, given: Message) -> TranscriptionConfig:
    param = "session.audio.input.turn_detection"
    no_vad = config.model in NO_VAD_MODELS
    if "turn_detection" not in given:
        # omitted: the realtime-only models have none; others keep theirs
        return dataclasses.replace(config, turn_detection=None) if no_vad else config
    value = given["turn_detection"]
    if value is None:
        return dataclasses.replace(config, turn_detection=None)
    if no_vad:
        raise RealtimeError(TURN_DETECTION_REFUSED_TEXT, param=param)
    return dataclasses.replace(config, turn_detection=_turn_detection(value, param))


def _turn_detection(value: object, param: str) -> TurnDetection:
    obj = _object(value, param)
    _known(
        obj,
        (
            "type",
            "threshold",
            "prefix_padding_ms",
            "silence_duration_ms",
            "eagerness",
            *_VAD_EXTRAS,
        ),
        param,
    )
    kind = obj.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise invalid_value(kind, ("server_vad", "semantic_vad"), f"{param}.type")
    extras = {key: obj[key] for key in _VAD_EXTRAS if key in obj}
    if kind == "semantic_vad":
        eagerness = obj.get("eagerness", "auto")
        if eagerness not in EAGERNESS_SILENCE_MS:
            raise invalid_value(eagerness, tuple(EAGERNESS_SILENCE_MS), f"{param}.eagerness")
        return TurnDetection(
            type="semantic_vad",
            silence_duration_ms=EAGERNESS_SILENCE_MS[eagerness],
            eagerness=eagerness,
            extras=extras,
        )
    if "eagerness" in obj:
        raise unknown_parameter(f"{param}.eagerness")
    threshold = _number(obj.get("threshold", 0.5), f"{param}.threshold", 0.0, 1.0)
    prefix = _integer(obj.get("prefix_padding_ms", 300), f"{param}.prefix_padding_ms", 0, 10000)
    silence = _integer(
        obj.get("silence_duration_ms", 500), f"{param}.silence_duration_ms", 0, 10000
    )
    return TurnDetection("server_vad", threshold, prefix, silence, None, extras)


def _format(value: object) -> FormatType:
    param = "session.audio.input.format"
    obj = _object(value, param)
    _known(obj, ("type", "rate"), param)
    kind = obj.get("type")
    if kind is None:
        raise missing_parameter(f"{param}.type")
    if kind not in FORMAT_TYPES:
        raise invalid_value(kind, FORMAT_TYPES, f"{param}.type")
    if kind == "audio/pcma":  # G.711 A-law: the real server takes it, the simulator cannot
        raise RealtimeError(
            "The simulator does not decode audio/pcma; use audio/pcm (24 kHz) or audio/pcmu.",
            code="simulator_unsupported",
            param=f"{param}.type",
        )
    if kind == "audio/pcm":
        _integer(obj.get("rate", PCM_RATE), f"{param}.rate", PCM_RATE, PCM_RATE)
        return "audio/pcm"
    if "rate" in obj:
        raise unknown_parameter(f"{param}.rate")
    return "audio/pcmu"


def _transcription(value: object) -> dict[str, Any]:
    param = "session.audio.input.transcription"
    if value is None:
        return {"model": None, "language": None, "prompt": None, "delay": None}
    obj = _object(value, param)
    _known(obj, ("model", "language", "prompt", "delay"), param)
    model = obj.get("model")
    if model is None:
        raise missing_parameter(f"{param}.model")
    if model not in TRANSCRIPTION_MODELS:
        raise invalid_value(model, TRANSCRIPTION_MODELS, f"{param}.model")
    delay = obj.get("delay")
    if delay is not None:
        if model != "gpt-realtime-whisper":
            raise RealtimeError(
                f"'{param}.delay' is only supported with gpt-realtime-whisper.",
                param=f"{param}.delay",
            )
        if delay not in DELAYS:
            raise invalid_value(delay, DELAYS, f"{param}.delay")
    changes: dict[str, Any] = {"model": model, "delay": delay}
    for key in ("language", "prompt"):
        text = obj.get(key)
        if text is not None and not isinstance(text, str):
            raise invalid_type(f"{param}.{key}", "a string", text)
        changes[key] = text
    return changes


def _noise_reduction(value: object) -> str | None:
    param = "session.audio.input.noise_reduction"
    if value is None:
        return None
    obj = _object(value, param)
    _known(obj, ("type",), param)
    kind = obj.get("type")
    if kind not in NOISE_REDUCTION_TYPES:
        raise invalid_value(kind, NOISE_REDUCTION_TYPES, f"{param}.type")
    return str(kind)


def _include(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid_type("session.include", "an array", value)
    for entry in value:
        if entry not in INCLUDE_VALUES:
            raise invalid_value(entry, INCLUDE_VALUES, "session.include")
    return tuple(value)


def _object(value: object, param: str) -> Message:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    return value


def _known(obj: Message, allowed: tuple[str, ...], param: str) -> None:
    for key in obj:
        if key not in allowed:
            raise unknown_parameter(f"{param}.{key}")


def _integer(value: object, param: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(param, "an integer", value)
    if value < low:
        raise below_min(param, low, value, integer=True)
    if value > high:
        raise above_max(param, high, value, integer=True)
    return value


def _number(value: object, param: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(param, "a number", value)
    if value < low:
        raise below_min(param, low, value, integer=False)
    if value > high:
        raise above_max(param, high, value, integer=False)
    return float(value)
