"""Pydantic models of the configuration file: schema, defaults, ranges, cross-field rules.

Validation problems raised here are ``PydanticCustomError`` of type ``edgecap``
whose context holds the ready-made message (and, for rules spanning two keys,
the key to blame); ``edgecap.config.problems`` turns them into one-line problems.
The models hold no secrets: those are resolved separately (``secrets.py``).
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from edgecap.config.base import (
    FilePath,
    Float,
    Int,
    _lower,
    _q,
    _Section,
    _usable_path,
    config_problem,
)
from edgecap.config.session import SessionConfig
from edgecap.config.urls import (
    TOKEN_PATH_SUFFIX,
    V3_STREAMING_URL,
    V3_TOKEN_URL,
    check_http_url,
    check_streaming_url,
    host_problem,
)

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_NAME_CHARS = 1024  # device, user and topic names: far below MQTT's 65535-byte strings
MAX_URL_CHARS = 2048
# Network waits: long enough for a slow link, short enough that a stuck peer is noticed.
MAX_NETWORK_TIMEOUT_SECONDS = 60
MAX_TERMINATE_TIMEOUT_SECONDS = 30
DEFAULT_STATE_DIR = Path("/var/lib/edgecap")
TOKEN_SERVICE_EXAMPLE = "https://keypool.example.com/v1/assemblyai"  # noqa: S105 - a URL

SpeechModel = Literal[
    "universal-streaming-english",
    "universal-streaming-multilingual",
    "u3-rt-pro",
    "universal-3-5-pro",
    "universal-3-6-pro",
]
AuthMode = Literal["token_service", "api_key"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogTarget = Literal["auto", "journal", "stderr"]
MqttProtocol = Literal["3.1.1", "5"]

_DEPRECATED_SPEECH_MODELS = {"u3-pro": "u3-rt-pro"}


def sanitise_device_id(raw: str) -> str:
    """Turn a host name into a valid device id (``[A-Za-z0-9_-]``, at most 64 characters)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", raw).strip("-")[:64].strip("-")
    return cleaned or "edgecap"


def default_device_id() -> str:
    return sanitise_device_id(socket.gethostname())


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """``$STATE_DIRECTORY`` (its first entry; systemd's StateDirectory=), else /var/lib/edgecap."""
    first = environ.get("STATE_DIRECTORY", "").split(":")[0].strip()
    return Path(first) if first else DEFAULT_STATE_DIR


class AudioConfig(_Section):
    device: str = Field(default="default", min_length=1, max_length=MAX_NAME_CHARS)
    sample_rate: Int = Field(default=16000, ge=8000, le=48000)
    frame_ms: Int = Field(default=50, ge=50, le=1000)
    periods: Int = Field(default=4, ge=2, le=32)
    reopen_min_seconds: Float = Field(default=1.0, gt=0, le=3600)
    reopen_max_seconds: Float = Field(default=30.0, gt=0, le=3600)

    @property
    def frame_samples(self) -> int:
        return self.sample_rate * self.frame_ms // 1000

    @property
    def frame_bytes(self) -> int:
        return self.frame_samples * 2  # PCM16 mono

    @model_validator(mode="after")
    def _cross_checks(self) -> AudioConfig:
        if self.reopen_min_seconds > self.reopen_max_seconds:
            raise config_problem(
                f"must be >= audio.reopen_min_seconds ({self.reopen_min_seconds:g}); "
                f"got {self.reopen_max_seconds:g}",
                key="reopen_max_seconds",
            )
        if (self.sample_rate * self.frame_ms) % 1000:
            raise config_problem(
                f"{self.frame_ms} ms at {self.sample_rate} Hz is not a whole number of samples; "
                "pick a frame_ms that divides evenly (e.g. 50 or 100)",
                key="frame_ms",
            )
        return self


class AuthConfig(_Section):
    mode: AuthMode = "token_service"
    token_service_url: str | None = Field(default=None, max_length=MAX_URL_CHARS)
    credential_file: FilePath | None = None
    api_key_file: FilePath | None = None
    api_token_url: str = Field(default=V3_TOKEN_URL, max_length=MAX_URL_CHARS)
    token_expires_in_seconds: Int = Field(default=60, ge=1, le=600)
    request_timeout_seconds: Float = Field(default=10.0, gt=0, le=MAX_NETWORK_TIMEOUT_SECONDS)

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_lower(cls, value: object) -> object:
        return _lower(value)

    @field_validator("token_service_url")
    @classmethod
    def _check_token_service_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problems = check_http_url(
            value, forbid_suffix=TOKEN_PATH_SUFFIX, example=TOKEN_SERVICE_EXAMPLE
        )
        if problems:
            raise config_problem(problems[0], more=tuple(problems[1:]))
        return value.rstrip("/")

    @field_validator("api_token_url")
    @classmethod
    def _check_api_token_url(cls, value: str) -> str:
        problems = check_http_url(value, require_suffix=TOKEN_PATH_SUFFIX, example=V3_TOKEN_URL)
        if problems:
            raise config_problem(problems[0], more=tuple(problems[1:]))
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> AuthConfig:
        if self.mode == "token_service" and self.token_service_url is None:
            raise config_problem(
                'required when auth.mode = "token_service": the token service base URL, '
                f'e.g. "{TOKEN_SERVICE_EXAMPLE}" (or set auth.mode = "api_key")',
                key="token_service_url",
            )
        return self


class StreamingConfig(_Section):
    url: str = Field(default=V3_STREAMING_URL, max_length=MAX_URL_CHARS)
    speech_model: SpeechModel = "universal-streaming-english"
    format_turns: bool = True
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
        if isinstance(value, str) and value in _DEPRECATED_SPEECH_MODELS:
            replacement = _DEPRECATED_SPEECH_MODELS[value]
            raise config_problem(
                f'"{value}" is a deprecated alias; use "{replacement}" (got "{value}")'
            )
        return value


class EndpointingConfig(_Section):
    end_of_turn_confidence_threshold: Float = Field(default=0.4, ge=0, le=1)
    min_turn_silence: Int = Field(default=400, ge=50, le=10000)
    max_turn_silence: Int = Field(default=1280, ge=50, le=10000)

    @model_validator(mode="after")
    def _cross_checks(self) -> EndpointingConfig:
        if self.max_turn_silence < self.min_turn_silence:
            raise config_problem(
                f"must be >= endpointing.min_turn_silence ({self.min_turn_silence} ms); "
                f"got {self.max_turn_silence}",
                key="max_turn_silence",
            )
        return self


class MqttConfig(_Section):
    host: str = "localhost"
    port: Int = Field(default=1883, ge=1, le=65535)
    prefix: str = Field(default="edgecap", max_length=MAX_NAME_CHARS)
    client_id: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    username: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    password_file: FilePath | None = None
    keepalive_seconds: Int = Field(default=60, ge=5, le=3600)
    reconnect_min_seconds: Int = Field(default=1, ge=1, le=3600)
    reconnect_max_seconds: Int = Field(default=30, ge=1, le=3600)
    protocol: MqttProtocol = "3.1.1"
    tls: bool = False
    ca_file: FilePath | None = None
    cert_file: FilePath | None = None
    key_file: FilePath | None = None
    tls_insecure: bool = False
    stats_interval_seconds: Int = Field(default=60, ge=5, le=86400)
    partials: bool = False
    hermes: bool = False
    discovery: bool = False
    discovery_prefix: str = Field(default="homeassistant", max_length=MAX_NAME_CHARS)

    def effective_client_id(self, device_id: str) -> str:
        """The MQTT client id: ``client_id`` if set, else ``edgecap-<device_id>``."""
        return self.client_id if self.client_id is not None else f"edgecap-{device_id}"

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not value or any(c.isspace() or not c.isprintable() for c in value):
            raise config_problem(
                f"must be a host name or address without spaces or control characters "
                f"(got {_q(value)})"
            )
        if "://" in value or "/" in value:
            raise config_problem(
                "give only the broker's host name or address (no scheme or path); "
                "the port goes in mqtt.port"
            )
        problem = host_problem(value)
        if problem:
            raise config_problem(f"{problem} (got {_q(value)})")
        return value

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise config_problem(f"must be an absolute path (got {_q(str(value))})")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> MqttConfig:
        if self.reconnect_max_seconds < self.reconnect_min_seconds:
            raise config_problem(
                f"must be >= mqtt.reconnect_min_seconds ({self.reconnect_min_seconds}); "
                f"got {self.reconnect_max_seconds}",
                key="reconnect_max_seconds",
            )
        for key in ("ca_file", "cert_file", "key_file", "tls_insecure"):
            if getattr(self, key) and not self.tls:
                raise config_problem(
                    "is used only with mqtt.tls = true; set it (a TLS listener is usually "
                    "port 8883) or remove this key",
                    key=key,
                )
        if self.key_file is not None and self.cert_file is None:
            raise config_problem("needs mqtt.cert_file (the client certificate)", key="key_file")
        if self.tls:
            _check_tls_files(self.ca_file, self.cert_file, self.key_file)
        return self

    @field_validator("prefix", "discovery_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not value:
            raise config_problem('must not be empty (e.g. "edgecap")')
        bad = [c for c in ("+", "#", "\x00") if c in value]
        if bad:
            raise config_problem(
                f"must not contain MQTT wildcards or NUL ({', '.join(map(repr, bad))}) "
                f"(got {_q(value)})"
            )
        if value.startswith("/") or value.endswith("/"):
            raise config_problem(f"must not start or end with '/' (got {_q(value)})")
        if "//" in value:
            raise config_problem(f"must not contain empty topic levels '//' (got {_q(value)})")
        if value.startswith("$"):
            raise config_problem(f"must not start with '$' (reserved by brokers) (got {_q(value)})")
        return value

    @field_validator("client_id", "username")
    @classmethod
    def _non_empty_optional(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise config_problem("must not be empty; remove the key to use the default")
        return value


def _check_tls_files(ca: Path | None, cert: Path | None, key: Path | None) -> None:
    """Load the TLS files the way the MQTT client will, so check-config reports them."""
    try:
        context = ssl.create_default_context(cafile=None if ca is None else str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise config_problem(
            f"cannot load CA certificates from {ca}: {exc}", key="ca_file"
        ) from exc
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), None if key is None else str(key))
        except (OSError, ssl.SSLError) as exc:
            raise config_problem(
                f"cannot load the client certificate {cert} "
                f"with key {key or '(in the certificate file)'}: {exc}",
                key="cert_file",
            ) from exc


class SpoolConfig(_Section):
    max_turns: Int = Field(default=10000, ge=1, le=1_000_000)
    max_age_hours: Int = Field(default=168, ge=1, le=8760)


class LoggingConfig(_Section):
    level: LogLevel = "info"
    target: LogTarget = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _level_lower(cls, value: object) -> object:
        return _lower(value)


def _default_state_dir_from_process() -> Path:
    return default_state_dir(os.environ)


class Config(_Section):
    device_id: str = Field(default_factory=default_device_id)
    state_dir: Path = Field(default_factory=_default_state_dir_from_process)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    streaming: StreamingConfig = Field(default_factory=StreamingConfig)
    endpointing: EndpointingConfig = Field(default_factory=EndpointingConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.effective_client_id(self.device_id)

    @field_validator("device_id")
    @classmethod
    def _check_device_id(cls, value: str) -> str:
        if not DEVICE_ID_RE.match(value):
            raise config_problem(
                "must be 1-64 characters from A-Z a-z 0-9 _ - (it is used in MQTT topics); "
                f"got {_q(value)}"
            )
        return value

    @field_validator("state_dir", mode="before")
    @classmethod
    def _check_state_dir(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise config_problem("must not be empty; remove the key to use the default")
        _usable_path(value)
        if isinstance(value, str | Path) and not Path(value).is_absolute():
            raise config_problem(f"must be an absolute path (got {_q(str(value))})")
        return value


SECTION_MODELS: dict[str, type[BaseModel]] = {
    name: info.annotation
    for name, info in Config.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
}
