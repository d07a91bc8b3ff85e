"""The `[sync]` section: AssemblyAI's Sync API, used when `streaming.provider =
"assemblyai-sync"` (no I/O).

One HTTP POST per utterance instead of a streaming session: billed per second of audio
sent, no session at all. The constants repeat those of
``edgecap.providers.assemblyai.sync`` (the configuration is a lower layer than the
providers); ``tests/test_sync_config.py`` keeps them in step. Where the POST goes follows
the auth mode unless ``url`` is set (``effective_url``).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from edgecap.config.auth import MAX_NETWORK_TIMEOUT_SECONDS, MAX_URL_CHARS
from edgecap.config.base import Float, Int, _Section, config_problem
from edgecap.config.urls import check_http_url

SYNC_LIVE_URL = "https://sync.assemblyai.com/v1/transcribe/live"
SYNC_TOKEN_SERVICE_PATH = "/sync"  # noqa: S105 - a URL path
SYNC_DEFAULT_MODEL = "universal-3-5-pro"
SYNC_SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_SYNC_PROMPT_CHARS = 4096
MAX_SYNC_KEYTERMS = 1000


class SyncConfig(_Section):
    url: str | None = Field(default=None, max_length=MAX_URL_CHARS)
    model: str = Field(default=SYNC_DEFAULT_MODEL, min_length=1, max_length=64)
    timestamps: bool = True
    language_code: str | None = Field(default=None, min_length=2, max_length=16)
    prompt: str | None = Field(default=None, max_length=MAX_SYNC_PROMPT_CHARS)
    keyterms: tuple[str, ...] = Field(default=(), max_length=MAX_SYNC_KEYTERMS)
    live_upload: bool = True
    trim_silence: bool = True
    trailing_silence_ms: Int = Field(default=300, ge=0, le=5000)
    request_timeout_seconds: Float = Field(default=30.0, gt=0, le=MAX_NETWORK_TIMEOUT_SECONDS)
    max_utterance_seconds: Float = Field(default=120.0, ge=1, le=120)
    split_after_seconds: Float = Field(default=90.0, ge=1, le=120)
    pending_max_utterances: Int = Field(default=500, ge=1, le=100_000)
    pending_max_mb: Float = Field(default=100.0, gt=0, le=10_000)
    pending_max_age_hours: Float = Field(default=24.0, gt=0, le=24 * 30)
    retry_max_seconds: Float = Field(default=60.0, ge=1, le=3600)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problems = check_http_url(value, example=SYNC_LIVE_URL)
        if problems:
            raise config_problem("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _split_before_max(self) -> SyncConfig:
        if self.split_after_seconds > self.max_utterance_seconds:
            raise config_problem(
                f"must not be above sync.max_utterance_seconds ({self.max_utterance_seconds:g}; "
                f"got {self.split_after_seconds:g}): an utterance is split at a pause after "
                "this and cut at the maximum",
                key="split_after_seconds",
            )
        return self

    def effective_url(self, mode: str, token_service_url: str | None) -> str:
        """Where each utterance is POSTed: ``url`` if set; else with an API key the Sync
        API's live-upload endpoint, through the token service (or proxy)
        ``{auth.token_service_url}/sync``."""
        if self.url is not None:
            return self.url
        if mode == "api_key" or token_service_url is None:
            return SYNC_LIVE_URL
        return token_service_url.rstrip("/") + SYNC_TOKEN_SERVICE_PATH
