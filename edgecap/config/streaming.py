"""The `[streaming]` and `[endpointing]` sections: where to connect and what to ask for.

Which optional parameter a speech model uses comes from ``edgecap.config.models_table``; a
parameter the chosen model would ignore is a problem naming both keys, since the server
ignores it silently. ``StreamingConfig.url`` is resolved here: when the file does not set
it, it is the AssemblyAI host of ``region`` (``"url" in model_fields_set`` tells whether it
was set). No I/O.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgecap.config.auth import MAX_NETWORK_TIMEOUT_SECONDS, MAX_URL_CHARS
from edgecap.config.base import Float, Int, _lower, _q, _Section, config_problem
from edgecap.config.models_table import (
    DEPRECATED_SPEECH_MODELS,
    MAX_KEYTERM_CHARS,
    MAX_KEYTERMS,
    MAX_LANGUAGE_CODES,
    MAX_PROMPT_CHARS,
    ModelCaps,
    SpeechModel,
    StreamingMode,
    default_turn_silence,
    default_vad_threshold,
    model_caps,
    models_with,
)
from edgecap.config.urls import (
    Region,
    check_streaming_url,
    region_of_url,
    region_streaming_url,
    url_host,
)

MAX_TERMINATE_TIMEOUT_SECONDS = 30
VoiceFocus = Literal["near-field", "far-field"]
Provider = Literal["assemblyai", "openai", "assemblyai-sync"]
"""Who transcribes: AssemblyAI v3 streaming (`[streaming]`, `[endpointing]`), OpenAI Realtime
transcription (`[openai]`) or AssemblyAI's Sync API, one POST per utterance (`[sync]`)."""
# ISO 639-1/639-3 language, optionally with a region or script ("en", "yue", "pt-BR", "en_us").
_LANGUAGE_CODE_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,4})?$")


def _listed(models: tuple[str, ...]) -> str:
    return ", ".join(models)


def _unsupported(key: str, model: SpeechModel, feature: str, what: str) -> Exception:
    """The problem for a key the configured model does not use (it would be ignored)."""
    return config_problem(
        f"{what} is used only by {_listed(models_with(feature))}; streaming.speech_model is "
        f'"{model}", which would ignore it: remove streaming.{key} or pick one of those models',
        key=key,
    )


def _language_code(value: str, index: int | None = None) -> str:
    code = value.strip()
    if not _LANGUAGE_CODE_RE.match(code):
        raise config_problem(
            f'is not a language code (got {_q(value)}); use an ISO 639 code such as "en" or '
            '"de", optionally with a region ("pt-BR")',
            index=index,
        )
    language = re.split(r"[-_]", code, maxsplit=1)[0]
    return language.lower() + code[len(language) :]


class StreamingConfig(_Section):
    provider: Provider = "assemblyai"
    region: Region = "global"
    url: str = Field(default=region_streaming_url("global"), max_length=MAX_URL_CHARS)
    speech_model: SpeechModel = "universal-streaming-english"
    format_turns: bool = True
    keyterms: tuple[str, ...] = ()
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    language_detection: bool = False
    language_code: str | None = None
    language_codes: tuple[str, ...] | None = None
    mode: StreamingMode | None = None
    vad_threshold: Float | None = Field(default=None, ge=0, le=1)
    voice_focus: VoiceFocus | None = None
    speaker_labels: bool = False
    max_speakers: Int | None = Field(default=None, ge=1, le=10)
    connect_timeout_seconds: Float = Field(default=10.0, gt=0, le=MAX_NETWORK_TIMEOUT_SECONDS)
    begin_timeout_seconds: Float = Field(default=10.0, gt=0, le=MAX_NETWORK_TIMEOUT_SECONDS)
    terminate_timeout_seconds: Float = Field(default=5.0, gt=0, le=MAX_TERMINATE_TIMEOUT_SECONDS)
    # Resilience (issue 3): reconnect policy, replay buffer and catch-up pacing.
    reconnect_max_seconds: Float = Field(default=30.0, ge=0.1, le=3600)
    stable_session_seconds: Float = Field(default=30.0, ge=1, le=3600)
    quick_failure_seconds: Float = Field(default=10.0, gt=0, le=600)
    quick_failure_count: Int = Field(default=3, ge=2, le=100)
    cooldown_seconds: Float = Field(default=300.0, ge=1, le=86400)
    replay_buffer_seconds: Float = Field(default=30.0, ge=1, le=600)
    catchup_rate: Float = Field(default=1.2, gt=1.0, le=2.0)
    preroll_burst_ms: Int = Field(default=1000, ge=100, le=1000)

    @property
    def caps(self) -> ModelCaps:
        """What the configured speech model uses, and its server defaults."""
        return model_caps(self.speech_model)

    @property
    def url_is_explicit(self) -> bool:
        """The file (or the environment) set ``url``; otherwise it follows ``region``."""
        return "url" in self.model_fields_set

    @property
    def effective_region(self) -> Region:
        """The region of ``url`` when it is an AssemblyAI streaming host, else ``region``."""
        return region_of_url(self.url) or self.region

    @property
    def effective_format_turns(self) -> bool | None:
        """``format_turns`` to send; None on the Pro models (always formatted, not sent)."""
        return None if self.caps.is_pro else self.format_turns

    @property
    def effective_language_codes(self) -> tuple[str, ...] | None:
        """``language_codes`` to send (``language_code`` is a one-element list), or None."""
        if self.language_code is not None:
            return (self.language_code,)
        return self.language_codes

    @property
    def effective_vad_threshold(self) -> float:
        """``vad_threshold`` if set, else the model's server default (None is not sent)."""
        if self.vad_threshold is not None:
            return self.vad_threshold
        return default_vad_threshold(self.speech_model, speaker_labels=self.speaker_labels)

    @field_validator("provider", "region", "voice_focus", "mode", mode="before")
    @classmethod
    def _choice_lower(cls, value: object) -> object:
        return _lower(value)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        problems = check_streaming_url(value)
        if problems:
            raise config_problem(problems[0], more=tuple(problems[1:]))
        return value

    @field_validator("speech_model", mode="before")
    @classmethod
    def _deprecated_model(cls, value: object) -> object:
        value = _lower(value)
        if isinstance(value, str) and value in DEPRECATED_SPEECH_MODELS:
            replacement = DEPRECATED_SPEECH_MODELS[value]
            raise config_problem(
                f'"{value}" is a deprecated alias; use "{replacement}" (got "{value}")'
            )
        return value

    @field_validator("keyterms")
    @classmethod
    def _check_keyterms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_KEYTERMS:
            raise config_problem(
                f"{len(value)} terms, at most {MAX_KEYTERMS} (AssemblyAI rejects the session "
                "otherwise); keep the words the model gets wrong"
            )
        terms = tuple(term.strip() for term in value)
        for index, term in enumerate(terms):
            if not term:
                raise config_problem("must not be empty or only spaces", index=index)
            if len(term) > MAX_KEYTERM_CHARS:
                raise config_problem(
                    f"{_q(term)} is too long ({len(term)} characters, at most "
                    f"{MAX_KEYTERM_CHARS}); use a shorter phrase",
                    index=index,
                )
        return terms

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise config_problem(
                "must not be empty; remove the key to use the model's built-in prompt"
            )
        return value

    @field_validator("language_code")
    @classmethod
    def _check_language_code(cls, value: str | None) -> str | None:
        return None if value is None else _language_code(value)

    @field_validator("language_codes")
    @classmethod
    def _check_language_codes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise config_problem("must not be empty; remove the key to not steer the language")
        if len(value) > MAX_LANGUAGE_CODES:
            raise config_problem(f"{len(value)} codes, at most {MAX_LANGUAGE_CODES}")
        return tuple(_language_code(code, index) for index, code in enumerate(value))

    @model_validator(mode="after")
    def _resolve_url(self) -> StreamingConfig:
        if not self.url_is_explicit:
            # The model is frozen; this runs once, on the instance being validated.
            object.__setattr__(self, "url", region_streaming_url(self.region))
            return self
        host_region = region_of_url(self.url)
        if "region" in self.model_fields_set and host_region not in (None, self.region):
            raise config_problem(
                f'is the "{host_region}" endpoint ({url_host(self.url)}) but streaming.region '
                f'is "{self.region}"; remove streaming.url to use '
                f"{region_streaming_url(self.region)}, or set streaming.region = "
                f'"{host_region}"',
                key="url",
            )
        return self

    @model_validator(mode="after")
    def _model_checks(self) -> StreamingConfig:
        if self.provider != "assemblyai":
            return self  # these keys are AssemblyAI's: provider_rules refuses them
        caps, model = self.caps, self.speech_model
        if self.prompt is not None and not caps.prompt:
            raise _unsupported("prompt", model, "prompt", "a prompt")
        if self.language_detection and not caps.language_detection:
            raise _unsupported(
                "language_detection", model, "language_detection", "language detection"
            )
        if self.language_code is not None and self.language_codes is not None:
            raise config_problem(
                "set either streaming.language_code or streaming.language_codes, not both "
                '(language_code = "de" is the same as language_codes = ["de"])',
                key="language_codes",
            )
        for key in ("language_code", "language_codes"):
            if getattr(self, key) is not None and not caps.language_codes:
                raise _unsupported(key, model, "language_codes", "language steering")
        if self.mode is not None and not caps.mode:
            raise _unsupported("mode", model, "mode", "a latency/accuracy mode")
        if self.voice_focus is not None and not caps.voice_focus:
            raise _unsupported("voice_focus", model, "voice_focus", "voice focus")
        if self.max_speakers is not None and not self.speaker_labels:
            raise config_problem(
                f"is used only with streaming.speaker_labels = true (got max_speakers = "
                f"{self.max_speakers} with speaker_labels = false); set speaker_labels = true "
                "or remove max_speakers",
                key="max_speakers",
            )
        return self

    @model_validator(mode="after")
    def _resilience_checks(self) -> StreamingConfig:
        if self.quick_failure_seconds > self.stable_session_seconds:
            raise config_problem(
                f"must be <= streaming.stable_session_seconds ({self.stable_session_seconds:g}); "
                f"got {self.quick_failure_seconds:g}",
                key="quick_failure_seconds",
            )
        if self.cooldown_seconds < self.reconnect_max_seconds:
            raise config_problem(
                f"must be >= streaming.reconnect_max_seconds ({self.reconnect_max_seconds:g}); "
                f"got {self.cooldown_seconds:g}",
                key="cooldown_seconds",
            )
        return self


class EndpointingConfig(_Section):
    """Turn detection. Unset silences take the model's default; the rules that need
    ``streaming.speech_model`` are in ``edgecap.config.crosscheck``."""

    end_of_turn_confidence_threshold: Float = Field(default=0.4, ge=0, le=1)
    min_turn_silence: Int | None = Field(default=None, ge=50, le=10000)
    max_turn_silence: Int | None = Field(default=None, ge=50, le=10000)

    def effective_turn_silence(self, speech_model: SpeechModel) -> tuple[int | None, int | None]:
        """(min, max) turn silence in ms to send: the configured values, else the model's
        default (400/1280 Universal-Streaming, 100/1000 u3-rt-pro); None: not sent (the
        Universal-3.5/3.6 Pro ``mode`` preset applies)."""
        default_min, default_max = default_turn_silence(speech_model)
        return (
            default_min if self.min_turn_silence is None else self.min_turn_silence,
            default_max if self.max_turn_silence is None else self.max_turn_silence,
        )

    def effective_confidence_threshold(self, speech_model: SpeechModel) -> float | None:
        """``end_of_turn_confidence_threshold`` to send; None on the Pro models (no effect)."""
        if model_caps(speech_model).is_pro:
            return None
        return self.end_of_turn_confidence_threshold

    @model_validator(mode="after")
    def _cross_checks(self) -> EndpointingConfig:
        low, high = self.min_turn_silence, self.max_turn_silence
        if low is not None and high is not None and high < low:
            raise config_problem(
                f"must be >= endpointing.min_turn_silence ({low} ms); got {high}",
                key="max_turn_silence",
            )
        return self
