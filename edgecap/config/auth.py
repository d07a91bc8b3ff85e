"""The `[auth]` section: how a session is authorised (token service, proxy or API key).

Rules that need another section (the proxy's `streaming.url`, the token URL that follows
`streaming.region`) are in ``edgecap.config.crosscheck``; keys that are set but unused in the
chosen mode are warnings (``edgecap.config.lint``), not problems. No I/O, no secrets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgecap.config.base import FilePath, Float, Int, _lower, _Section, config_problem
from edgecap.config.urls import TOKEN_PATH_SUFFIX, V3_TOKEN_URL, check_http_url

MAX_URL_CHARS = 2048
# Network waits: long enough for a slow link, short enough that a stuck peer is noticed.
MAX_NETWORK_TIMEOUT_SECONDS = 60
TOKEN_SERVICE_EXAMPLE = "https://keypool.example.com/v1/assemblyai"  # noqa: S105 - a URL

AuthMode = Literal["token_service", "proxy", "api_key"]
"""token_service: single-use tokens (OpenAI: ephemeral client secrets) from a KeyPool-compatible
token service, then the provider directly; proxy: the WebSocket goes through a
KeyPool-compatible proxy with the team credential (AssemblyAI only); api_key: the provider's
API key on the device."""
ProxyAuth = Literal["header", "subprotocol"]
"""How the team credential reaches the proxy: ``Authorization: Bearer <credential>`` on the
upgrade request, or the WebSocket subprotocol ``keypool-token.<credential>``."""
ApiKeyAuth = Literal["token", "header"]
"""token: mint a temporary token (OpenAI: an ephemeral client secret) with the key (the key
never goes on the WebSocket); header: send the key itself on the upgrade (AssemblyAI:
``Authorization: <key>``, OpenAI: ``Authorization: Bearer <key>``)."""

PROXY_SUBPROTOCOL_PREFIX = "keypool-token."


class AuthConfig(_Section):
    mode: AuthMode = "token_service"
    token_service_url: str | None = Field(default=None, max_length=MAX_URL_CHARS)
    credential_file: FilePath | None = None
    api_key_file: FilePath | None = None
    openai_api_key_file: FilePath | None = None
    api_token_url: str = Field(default=V3_TOKEN_URL, max_length=MAX_URL_CHARS)
    proxy_auth: ProxyAuth = "header"
    api_key_auth: ApiKeyAuth = "token"
    token_expires_in_seconds: Int = Field(default=60, ge=1, le=600)
    request_timeout_seconds: Float = Field(default=10.0, gt=0, le=MAX_NETWORK_TIMEOUT_SECONDS)

    @property
    def uses_team_credential(self) -> bool:
        """The token-service credential is needed (token_service and proxy modes)."""
        return self.mode in ("token_service", "proxy")

    @property
    def mints_tokens(self) -> bool:
        """edgecap fetches a single-use token before each session (not through a proxy, not
        with the API key in the upgrade request)."""
        if self.mode == "api_key":
            return self.api_key_auth == "token"
        return self.mode == "token_service"

    @field_validator("mode", "proxy_auth", "api_key_auth", mode="before")
    @classmethod
    def _choice_lower(cls, value: object) -> object:
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
                f'e.g. "{TOKEN_SERVICE_EXAMPLE}" (.../v1/openai for OpenAI) (or set auth.mode '
                '= "proxy" or "api_key")',
                key="token_service_url",
            )
        return self
