"""The token service's TOML configuration (`edgecap-tokens --config FILE`), validated like
edgecap's own: every problem names its key and the bad value, unknown keys are errors, and
secrets (the provider API keys) come only from files, $CREDENTIALS_DIRECTORY or the
environment. See config/edgecap-tokens.toml for every key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from edgecap.config.base import FilePath, Float, Int, _q, _Section, config_problem
from edgecap.config.files import read_toml
from edgecap.config.secrets import SecretSpec, missing_secret_problem, resolve_secret
from edgecap.config.urls import check_http_url, check_streaming_url

DEFAULT_DATABASE = "/var/lib/edgecap-tokens/tokens.sqlite3"
DEFAULT_CONFIG = "/etc/edgecap-tokens/edgecap-tokens.toml"
CONFIG_ENV = "EDGECAP_TOKENS_CONFIG"
AAI_TOKEN_URL = "https://streaming.assemblyai.com/v3/token"  # noqa: S105 - a URL
AAI_STREAMING_URL = "wss://streaming.assemblyai.com/v3/ws"
AAI_SYNC_URL = "https://sync.assemblyai.com/transcribe"
OPENAI_SECRETS_URL = "https://api.openai.com/v1/realtime/client_secrets"
MAX_URL = 2048

AAI_KEY = SecretSpec(
    "api_key",
    "AssemblyAI API key",
    "assemblyai.api_key_file",
    "assemblyai-api-key",
    "EDGECAP_TOKENS_ASSEMBLYAI_API_KEY",
)
OPENAI_KEY = SecretSpec(
    "openai_api_key",
    "OpenAI API key",
    "openai.api_key_file",
    "openai-api-key",
    "EDGECAP_TOKENS_OPENAI_API_KEY",
)


def _url(value: str, *, ws: bool = False) -> str:
    problems = check_streaming_url(value) if ws else check_http_url(value, example=AAI_TOKEN_URL)
    if problems:
        raise config_problem(f"{problems[0]} (got {_q(value)})")
    return value


class AssemblyAISection(_Section):
    enabled: bool = True
    api_key_file: FilePath | None = None
    token_url: str = Field(default=AAI_TOKEN_URL, max_length=MAX_URL)
    streaming_url: str = Field(default=AAI_STREAMING_URL, max_length=MAX_URL)
    sync_url: str = Field(default=AAI_SYNC_URL, max_length=MAX_URL)
    max_sync_body_bytes: Int = Field(default=40 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)

    @field_validator("token_url", "sync_url")
    @classmethod
    def _http(cls, value: str) -> str:
        return _url(value)

    @field_validator("streaming_url")
    @classmethod
    def _ws(cls, value: str) -> str:
        return _url(value, ws=True)


class OpenAISection(_Section):
    enabled: bool = False
    api_key_file: FilePath | None = None
    client_secrets_url: str = Field(default=OPENAI_SECRETS_URL, max_length=MAX_URL)
    max_expires_seconds: Int = Field(default=600, ge=10, le=7200)

    @field_validator("client_secrets_url")
    @classmethod
    def _http(cls, value: str) -> str:
        return _url(value)


class DeviceLimits(_Section):
    """Per device; 0 means no limit."""

    token_requests_per_minute: Int = Field(default=30, ge=0, le=100_000)
    concurrent_sessions: Int = Field(default=2, ge=0, le=100_000)
    daily_billed_seconds: Int = Field(default=0, ge=0, le=86_400 * 100)
    max_session_seconds: Int = Field(default=3600, ge=60, le=10_800)
    max_token_expires_seconds: Int = Field(default=600, ge=1, le=600)


class FleetLimits(_Section):
    """For all devices together; 0 means no limit."""

    token_requests_per_minute: Int = Field(default=0, ge=0, le=10_000_000)
    concurrent_sessions: Int = Field(default=0, ge=0, le=10_000_000)
    daily_billed_seconds: Int = Field(default=0, ge=0, le=86_400 * 1_000_000)


class LimitsSection(_Section):
    device: DeviceLimits = DeviceLimits()
    fleet: FleetLimits = FleetLimits()


class ServiceConfig(_Section):
    listen: str = "127.0.0.1:8700"
    database: str = Field(default=DEFAULT_DATABASE, min_length=1, max_length=MAX_URL)
    drain_seconds: Float = Field(default=20.0, ge=0, le=600)
    session_check_seconds: Float = Field(default=30.0, ge=0.5, le=3600)
    upstream_timeout_seconds: Float = Field(default=10.0, gt=0, le=120)
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")
    assemblyai: AssemblyAISection = AssemblyAISection()
    openai: OpenAISection = OpenAISection()
    limits: LimitsSection = LimitsSection()

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise config_problem(f'must be "HOST:PORT", e.g. "127.0.0.1:8700" (got {_q(value)})')
        return value

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        if "://" in value and not value.startswith(("postgresql://", "postgresql+psycopg://")):
            raise config_problem(
                "must be a SQLite file path or a postgresql:// URL (got another URL scheme)"
            )
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True, repr=False)
class LoadedService:
    config: ServiceConfig
    path: Path
    assemblyai_key: str | None = field(default=None, repr=False)
    openai_key: str | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"LoadedService(path={self.path!s}, keys=<redacted>)"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(k for k in (self.assemblyai_key, self.openai_key) if k)


class ServiceConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        lines = [f"invalid configuration ({len(self.problems)} problem(s)):"]
        return "\n".join([*lines, *(f"  - {p}" for p in self.problems)])


def describe(exc: ValidationError) -> list[str]:
    """One line per problem, starting with the dotted key (values of unknown keys and of
    secrets are never shown)."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        ctx = err.get("ctx") or {}
        if isinstance(ctx.get("key"), str):
            loc.append(ctx["key"])
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            out.append(f"{key}: unknown key; remove it (see config/edgecap-tokens.toml)")
        elif err["type"] == "edgecap":
            out.append(f"{key}: {err['msg']}")
        else:
            shown = "" if isinstance(err.get("input"), dict) else f" (got {_q(err.get('input'))})"
            out.append(f"{key}: {err['msg']}{shown}")
    return out


def parse_config(data: Mapping[str, Any]) -> ServiceConfig:
    try:
        return ServiceConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ServiceConfigError(describe(exc)) from None


def load_service_config(
    path: Path, environ: Mapping[str, str] | None = None, *, need_keys: bool = True
) -> LoadedService:
    """The validated configuration and its API keys; `ServiceConfigError` lists every
    problem. `need_keys=False` (the device commands) does not read the keys."""
    env = os.environ if environ is None else environ
    if not path.exists():
        raise ServiceConfigError([f"{path}: config file not found; pass --config PATH"])
    data, problems = read_toml(path)
    if data is None:
        raise ServiceConfigError(problems)
    config = parse_config(data)
    if "://" not in config.database and not Path(config.database).is_absolute():
        # a relative SQLite path is relative to the config file, like the key files
        config = config.model_copy(update={"database": str(path.parent / config.database)})
    if not need_keys:
        return LoadedService(config, path)
    keys: dict[str, str | None] = {}
    warnings: list[str] = []
    problems = []
    for spec, section in ((AAI_KEY, config.assemblyai), (OPENAI_KEY, config.openai)):
        if not section.enabled:
            keys[spec.name] = None
            continue
        value, _, found, warned = resolve_secret(spec, section.api_key_file, env, path.parent)
        problems += found
        warnings += warned
        if value is None and not found:
            problems.append(
                missing_secret_problem(spec, f"while [{spec.file_key.split('.')[0]}] is on")
            )
        keys[spec.name] = value
    if problems:
        raise ServiceConfigError(problems)
    return LoadedService(config, path, keys["api_key"], keys["openai_api_key"], tuple(warnings))
