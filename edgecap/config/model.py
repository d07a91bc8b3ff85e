"""Pydantic models of the configuration file: schema, defaults, ranges, cross-field rules.

The `[auth]` section is in ``auth.py``, `[streaming]` and `[endpointing]` in ``streaming.py``,
`[openai]` in ``openai.py``, `[session]` in ``session.py``; rules spanning sections in
``crosscheck.py`` and, for the provider choice, ``provider_rules.py``.

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

from edgecap.config.auth import AuthConfig, AuthMode
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
from edgecap.config.control import ControlConfig
from edgecap.config.crosscheck import check_endpointing, check_proxy, resolve_api_token_url
from edgecap.config.models_table import SpeechModel
from edgecap.config.openai import OpenAIConfig
from edgecap.config.pricing import PricingConfig
from edgecap.config.provider_rules import check_provider
from edgecap.config.session import SessionConfig
from edgecap.config.streaming import EndpointingConfig, StreamingConfig
from edgecap.config.sync import SyncConfig
from edgecap.config.urls import host_problem

__all__ = [  # the section models and names that used to live here stay importable
    "SECTION_MODELS",
    "AudioConfig",
    "AuthConfig",
    "AuthMode",
    "Config",
    "EndpointingConfig",
    "LoggingConfig",
    "MqttConfig",
    "OpenAIConfig",
    "SpeechModel",
    "SpoolConfig",
    "StreamingConfig",
    "default_device_id",
    "default_state_dir",
    "sanitise_device_id",
]

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_NAME_CHARS = 1024  # device, user and topic names: far below MQTT's 65535-byte strings
DEFAULT_STATE_DIR = Path("/var/lib/edgecap")

LogLevel = Literal["debug", "info", "warning", "error"]
LogTarget = Literal["auto", "journal", "stderr"]
MqttProtocol = Literal["3.1.1", "5"]


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
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)

    @property
    def sync_provider(self) -> bool:
        """Utterances go to AssemblyAI's Sync API (no streaming session)."""
        return self.streaming.provider == "assemblyai-sync"

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.effective_client_id(self.device_id)

    @property
    def service_model(self) -> tuple[str, str]:
        """(provider, model) that transcribes: the key of its price."""
        if self.streaming.provider == "openai":
            return "openai", self.openai.model
        if self.streaming.provider == "assemblyai-sync":
            return "assemblyai-sync", self.sync.model
        return self.streaming.provider, self.streaming.speech_model

    @property
    def price_per_hour(self) -> float | None:
        """The price of a billed hour with this configuration (None: not known)."""
        provider, model = self.service_model
        return self.pricing.price(provider, model, keyterms=bool(self.streaming.keyterms))

    @property
    def budget_seconds(self) -> float | None:
        """Today's budget in billed seconds: `daily_budget_minutes`, or `daily_budget_cost`
        at the configured price, whichever is less (None: no budget)."""
        limits = [] if self.session.budget_seconds is None else [self.session.budget_seconds]
        cost, price = self.session.daily_budget_cost, self.price_per_hour
        if cost is not None and price:
            limits.append(cost / price * 3600)
        return min(limits) if limits else None

    @model_validator(mode="after")
    def _sections_agree(self) -> Config:
        check_provider(
            audio_rate=self.audio.sample_rate,
            auth=self.auth,
            streaming=self.streaming,
            endpointing=self.endpointing,
            session=self.session,
            openai=self.openai,
            sync=self.sync,
        )
        if self.streaming.provider == "assemblyai":
            check_proxy(self.auth, self.streaming)
            check_endpointing(self.streaming, self.endpointing)
        if self.session.daily_budget_cost is not None and not self.price_per_hour:
            provider, model = self.service_model
            raise config_problem(
                f'needs the price of "{provider}:{model}", which is not in the built-in '
                f'table (or is 0): set [pricing] per_hour = {{ "{provider}:{model}" = '
                f"<price per hour> }}",
                key="session.daily_budget_cost",
            )
        auth = resolve_api_token_url(self.auth, self.streaming)
        if auth is not self.auth:
            # The model is frozen; this runs once, on the instance being validated.
            object.__setattr__(self, "auth", auth)
        return self

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
