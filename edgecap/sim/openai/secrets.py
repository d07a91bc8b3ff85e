"""Ephemeral client secrets (``ek_…``) and WebSocket authentication (sans-I/O).

``POST /v1/realtime/client_secrets`` takes ``{"expires_after": {"anchor": "created_at",
"seconds": 10..7200 (default 600)}, "session": {...}}`` and answers ``{"value": "ek_…",
"expires_at": <unix s>, "session": {...}}``. Unlike AssemblyAI's temporary tokens a secret
is reusable: it opens any number of sessions until it expires (a session already open
goes on). Each use is recorded on the secret.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from edgecap.sim.openai.config import TranscriptionConfig, apply_session_update
from edgecap.sim.openai.protocol import (
    Message,
    RealtimeError,
    above_max,
    below_min,
    invalid_type,
    invalid_value,
    new_id,
    unknown_parameter,
)

MIN_SECONDS = 10
MAX_SECONDS = 7200
DEFAULT_SECONDS = 600
SECRET_PREFIX = "ek_sim_"  # noqa: S105 - a marker, not a secret

AuthKind = Literal["api_key", "ephemeral", "none"]
MintedVia = Literal["api_key", "keypool", "direct"]
SessionType = Literal["transcription", "realtime"]


@dataclass
class EphemeralSecret:
    """One minted secret: its session configuration and every session it opened."""

    value: str
    created_at: float
    expires_at: int
    session_type: SessionType | None
    config: TranscriptionConfig | None  # the transcription session it was minted for
    session: Message  # as answered at mint
    via: MintedVia
    uses: list[int] = field(default_factory=list)  # session record indexes


@dataclass(frozen=True)
class SecretRequest:
    """A validated mint request."""

    seconds: int
    session_type: SessionType | None
    config: TranscriptionConfig | None
    realtime_session: Message | None


class AuthFailure(Exception):
    """The upgrade is refused with 401 and this OpenAI-style error object."""

    def __init__(self, error: RealtimeError) -> None:
        super().__init__(error.message)
        self.error = error


def parse_secret_request(body: bytes | None) -> SecretRequest:
    """Validate a mint request's JSON body; :class:`RealtimeError` (HTTP 400) if invalid."""
    try:
        data: Any = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RealtimeError(
            "We could not parse the JSON body of your request.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise invalid_type("body", "an object", data)
    for key in data:
        if key not in ("expires_after", "session"):
            raise unknown_parameter(key)
    seconds = _expires_after(data.get("expires_after"))
    session = data.get("session")
    if session is None:
        return SecretRequest(seconds, None, None, None)
    if not isinstance(session, dict):
        raise invalid_type("session", "an object", session)
    kind = session.get("type")
    if kind == "realtime":
        return SecretRequest(seconds, "realtime", None, dict(session))
    if kind != "transcription":
        raise invalid_value(kind, ("realtime", "transcription"), "session.type")
    config = apply_session_update(TranscriptionConfig(), session)
    return SecretRequest(seconds, "transcription", config, None)


def _expires_after(value: object) -> int:
    if value is None:
        return DEFAULT_SECONDS
    if not isinstance(value, dict):
        raise invalid_type("expires_after", "an object", value)
    for key in value:
        if key not in ("anchor", "seconds"):
            raise unknown_parameter(f"expires_after.{key}")
    anchor = value.get("anchor", "created_at")
    if anchor != "created_at":
        raise invalid_value(anchor, ("created_at",), "expires_after.anchor")
    seconds = value.get("seconds", DEFAULT_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise invalid_type("expires_after.seconds", "an integer", seconds)
    if seconds < MIN_SECONDS:
        raise below_min("expires_after.seconds", MIN_SECONDS, seconds, integer=True)
    if seconds > MAX_SECONDS:
        raise above_max("expires_after.seconds", MAX_SECONDS, seconds, integer=True)
    return seconds


def _mask(key: str) -> str:
    return key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)


class SecretStore:
    """Mints secrets and authenticates ``Authorization: Bearer …`` on the WebSocket."""

    def __init__(self, api_key: str, clock: Callable[[], float] = time.time) -> None:
        self.api_key = api_key
        self.clock = clock
        self.minted: list[EphemeralSecret] = []
        self._by_value: dict[str, EphemeralSecret] = {}

    def mint(self, request: SecretRequest, via: MintedVia = "direct") -> EphemeralSecret:
        """A new secret for ``request`` (already validated)."""
        now = self.clock()
        expires_at = int(now + request.seconds)
        value = SECRET_PREFIX + secrets.token_urlsafe(24)
        if request.config is not None:
            session = request.config.session_object(new_id("sess"), expires_at)
        elif request.realtime_session is not None:
            session = {**request.realtime_session, "object": "realtime.session"}
        else:
            session = {}
        secret = EphemeralSecret(
            value=value,
            created_at=now,
            expires_at=expires_at,
            session_type=request.session_type,
            config=request.config,
            session=session,
            via=via,
        )
        self.minted.append(secret)
        self._by_value[value] = secret
        return secret

    def get(self, value: str) -> EphemeralSecret | None:
        """The secret with this value, expired or not."""
        return self._by_value.get(value)

    def authenticate(self, authorization: str | None) -> tuple[AuthKind, EphemeralSecret | None]:
        """How an upgrade request authenticates; :class:`AuthFailure` when it does not."""
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise AuthFailure(
                RealtimeError(
                    "You didn't provide an API key. You need to provide your API key in an"
                    " Authorization header using Bearer auth (i.e. Authorization: Bearer"
                    " YOUR_KEY)."
                )
            )
        if secrets.compare_digest(value.encode(), self.api_key.encode()):
            return "api_key", None
        secret = self._by_value.get(value)
        if secret is not None and self.clock() < secret.expires_at:
            return "ephemeral", secret
        detail = " (the client secret has expired)" if secret is not None else ""
        raise AuthFailure(
            RealtimeError(
                f"Incorrect API key provided: {_mask(value)}{detail}.", code="invalid_api_key"
            )
        )
