"""The `[openai]` section: OpenAI Realtime transcription, used when `streaming.provider =
"openai"` (no I/O).

The constants repeat those of ``edgecap.providers.openai.params`` (the configuration is a
lower layer than the providers and may not import them); ``tests/test_config_openai.py``
keeps the two in step. Rules that need another section (the provider choice, the 24 kHz
capture rate, the voice gate for manual commits) are in ``edgecap.config.provider_rules``.
"""

from __future__ import annotations

import re
from typing import Literal, get_args
from urllib.parse import parse_qsl

from pydantic import Field, field_validator, model_validator

from edgecap.config.auth import MAX_URL_CHARS
from edgecap.config.base import Float, Int, _lower, _q, _Section, config_problem, shorten
from edgecap.config.urls import (
    CREDENTIAL_PARAMS,
    _scheme_problems,
    _split,
    check_http_url,
)

OPENAI_HOST = "api.openai.com"
OPENAI_DEFAULT_URL = "wss://api.openai.com/v1/realtime?intent=transcription"
OPENAI_CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets"
OPENAI_CLIENT_SECRETS_URL = f"https://{OPENAI_HOST}{OPENAI_CLIENT_SECRETS_PATH}"
OPENAI_TOKEN_SERVICE_EXAMPLE = "https://keypool.example.com/v1/openai"  # noqa: S105 - a URL
OPENAI_SAMPLE_RATE = 24_000
"""The only PCM rate the Realtime API takes."""
MAX_OPENAI_PROMPT_CHARS = 4_000

OpenAIModel = Literal[
    "gpt-live-transcribe",
    "gpt-realtime-whisper",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe-diarize",
    "whisper-1",
]
OPENAI_MODELS: tuple[OpenAIModel, ...] = get_args(OpenAIModel)
OPENAI_DEFAULT_MODEL: OpenAIModel = "gpt-live-transcribe"
REALTIME_ONLY_MODELS: frozenset[str] = frozenset({"gpt-live-transcribe", "gpt-realtime-whisper"})
"""Models without server turn detection: edgecap commits each turn (manual)."""
NO_PROMPT_MODELS: frozenset[str] = frozenset({"gpt-realtime-whisper"})
"""Models that take no prompt."""

TurnDetection = Literal["server_vad", "manual"]
"""server_vad: the server commits the audio at each pause; manual: edgecap commits at the
end of local speech (the voice gate)."""
NoiseReduction = Literal["near_field", "far_field", "off"]
SERVER_VAD_KEYS = ("vad_threshold", "prefix_padding_ms", "silence_duration_ms")
_LANGUAGE_RE = re.compile(r"[A-Za-z]{2}")


def check_openai_url(url: str) -> list[str]:
    """Problems with the Realtime WebSocket URL, without the key (empty when fine). Query
    values are not quoted back, except the model name, which is not a secret."""
    parts, problems = _split(url)
    if parts is None:
        return problems
    if parts.username is not None or parts.password is not None:
        problems.append(
            "credentials don't belong in the URL (remove the user:password@ part); edgecap "
            "sends them in the Authorization header"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    secret_names = sorted({name for name, _ in query if name.lower() in CREDENTIAL_PARAMS})
    if secret_names:
        listed = ", ".join(repr(n) for n in secret_names)
        problems.append(
            f"credentials don't belong in the URL (remove the query parameter {listed}); "
            "edgecap sends them in the Authorization header"
        )
    if parts.fragment:
        problems.append("must not contain a #fragment")
    problems += _scheme_problems(parts, "ws", "wss", OPENAI_DEFAULT_URL)
    if (parts.hostname or "").rstrip(".").lower() != OPENAI_HOST:
        return problems  # a proxy, a compatible server or the simulator: its own rules
    values = dict(query)
    if "model" in values:
        problems.append(
            f"must not carry a model query parameter for {OPENAI_HOST} (got model="
            f"{_q(shorten(values['model'], 40))}): a model in the URL opens a conversation "
            "session, which rejects the transcription session.update; use "
            f"{OPENAI_DEFAULT_URL} and choose the model with openai.model"
        )
    elif values.get("intent") != "transcription":
        got = "no intent" if "intent" not in values else f"intent={_q(values['intent'])}"
        problems.append(
            f"must carry intent=transcription for {OPENAI_HOST} (got {got}); use "
            f"{OPENAI_DEFAULT_URL}"
        )
    return problems


class OpenAIConfig(_Section):
    url: str = Field(default=OPENAI_DEFAULT_URL, max_length=MAX_URL_CHARS)
    model: OpenAIModel = OPENAI_DEFAULT_MODEL
    language: str | None = None
    prompt: str | None = Field(default=None, max_length=MAX_OPENAI_PROMPT_CHARS)
    noise_reduction: NoiseReduction = "off"
    turn_detection: TurnDetection | None = None
    vad_threshold: Float = Field(default=0.5, ge=0, le=1)
    prefix_padding_ms: Int = Field(default=300, ge=0, le=2000)
    silence_duration_ms: Int = Field(default=500, ge=100, le=5000)
    secret_expires_seconds: Int = Field(default=600, ge=10, le=7200)
    client_secrets_url: str = Field(default=OPENAI_CLIENT_SECRETS_URL, max_length=MAX_URL_CHARS)

    @property
    def realtime_only(self) -> bool:
        """The model has no server turn detection (edgecap must commit each turn)."""
        return self.model in REALTIME_ONLY_MODELS

    @property
    def effective_turn_detection(self) -> TurnDetection:
        """``turn_detection`` if set, else "manual" for the realtime-only models and
        "server_vad" for the others."""
        if self.turn_detection is not None:
            return self.turn_detection
        return "manual" if self.realtime_only else "server_vad"

    @property
    def manual_commit(self) -> bool:
        """edgecap commits each turn at the end of local speech (no server turn detection)."""
        return self.effective_turn_detection == "manual"

    @property
    def effective_noise_reduction(self) -> Literal["near_field", "far_field"] | None:
        """The noise reduction to send; None: off (sent as null)."""
        return None if self.noise_reduction == "off" else self.noise_reduction

    @field_validator("model", "noise_reduction", "turn_detection", mode="before")
    @classmethod
    def _choice_lower(cls, value: object) -> object:
        return _lower(value)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        problems = check_openai_url(value)
        if problems:
            raise config_problem(problems[0], more=tuple(problems[1:]))
        return value

    @field_validator("client_secrets_url")
    @classmethod
    def _check_client_secrets_url(cls, value: str) -> str:
        problems = check_http_url(
            value, require_suffix=OPENAI_CLIENT_SECRETS_PATH, example=OPENAI_CLIENT_SECRETS_URL
        )
        if problems:
            raise config_problem(problems[0], more=tuple(problems[1:]))
        return value

    @field_validator("language")
    @classmethod
    def _check_language(cls, value: str | None) -> str | None:
        if value is not None and not _LANGUAGE_RE.fullmatch(value):
            raise config_problem(
                f'must be a two-letter ISO-639-1 code such as "en" or "de" (got {_q(value)}); '
                "remove it to let the model detect the language"
            )
        return None if value is None else value.lower()

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise config_problem("must not be empty; remove the key to send no prompt")
        return value

    @model_validator(mode="after")
    def _model_checks(self) -> OpenAIConfig:
        if self.turn_detection == "server_vad" and self.realtime_only:
            others = ", ".join(m for m in OPENAI_MODELS if m not in REALTIME_ONLY_MODELS)
            raise config_problem(
                f'"server_vad" is not available with openai.model = "{self.model}" (it has no '
                'server turn detection): set openai.turn_detection = "manual" (or remove it), '
                f"or pick a model that has it: {others}",
                key="turn_detection",
            )
        if self.prompt is not None and self.model in NO_PROMPT_MODELS:
            raise config_problem(
                f'has no effect with openai.model = "{self.model}", which takes no prompt (got '
                f"{_q(self.prompt)}); remove openai.prompt or pick another model",
                key="prompt",
            )
        return self
