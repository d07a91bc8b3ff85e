"""Temporary tokens and connection authentication for the simulator (sans-I/O).

Tokens follow the v3 rules: single use, and they must be redeemed within
``expires_in_seconds`` of minting; the session they open lasts at most
``max_session_duration_seconds``. Simulator tokens start with ``sim-``.

How a session authenticated (:data:`AuthKind`):

* ``token``: a temporary token, in ``?token=`` or as the raw ``Authorization`` value
  (``/v3/ws``);
* ``api_key_header``: ``Authorization: <api key>``, raw, for a server-side client
  (``/v3/ws``); a ``Bearer``-prefixed key is refused like any wrong key;
* ``proxy_header`` / ``proxy_subprotocol``: the KeyPool-compatible proxy path
  (``/v1/assemblyai/v3/ws``) with the team credential as ``Authorization: Bearer <c>`` on
  the upgrade or as the subprotocol ``keypool-token.<c>`` (see :func:`proxy_auth`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

MIN_EXPIRES = 1
MAX_EXPIRES = 600
MIN_SESSION = 60
MAX_SESSION = 10800
TOKEN_PREFIX = "sim-"  # noqa: S105 - a marker, not a secret

AuthKind = Literal["token", "api_key_header", "proxy_header", "proxy_subprotocol"]
PROXY_SUBPROTOCOL_PREFIX = "keypool-token."


class AuthError(Exception):
    """Authentication failed; ``reason`` follows ``Unauthorized Connection: ``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Grant:
    """A successful authentication."""

    kind: AuthKind
    max_session_seconds: float
    token: str | None = None


@dataclass
class _Minted:
    expires_at: float
    max_session_seconds: int
    used: bool = False


def validate_token_params(
    expires_in_seconds: int, max_session_duration_seconds: int | None
) -> None:
    """Raise ``ValueError`` for parameters outside the documented ranges."""
    if not MIN_EXPIRES <= expires_in_seconds <= MAX_EXPIRES:
        raise ValueError(f"expires_in_seconds must be between {MIN_EXPIRES} and {MAX_EXPIRES}")
    if max_session_duration_seconds is not None and not (
        MIN_SESSION <= max_session_duration_seconds <= MAX_SESSION
    ):
        raise ValueError(
            f"max_session_duration_seconds must be between {MIN_SESSION} and {MAX_SESSION}"
        )


class TokenStore:
    """Mints and redeems single-use temporary tokens; knows the API key."""

    def __init__(self, api_key: str, clock: Callable[[], float] = time.time) -> None:
        self.api_key = api_key
        self.clock = clock
        self._tokens: dict[str, _Minted] = {}

    def mint(self, expires_in_seconds: int, max_session_duration_seconds: int | None = None) -> str:
        """Create a token; raises ``ValueError`` for out-of-range parameters."""
        validate_token_params(expires_in_seconds, max_session_duration_seconds)
        token = TOKEN_PREFIX + secrets.token_urlsafe(24)
        self._tokens[token] = _Minted(
            expires_at=self.clock() + expires_in_seconds,
            max_session_seconds=max_session_duration_seconds or MAX_SESSION,
        )
        return token

    def redeem(self, token: str) -> Grant:
        """Use a token once; raises :class:`AuthError` if it cannot open a session."""
        minted = self._tokens.get(token)
        if minted is None:
            raise AuthError("Invalid token")
        if minted.used:
            raise AuthError("Token already used")
        if self.clock() > minted.expires_at:
            minted.used = True
            raise AuthError("Token expired")
        minted.used = True
        return Grant(kind="token", max_session_seconds=minted.max_session_seconds, token=token)

    def authenticate(self, query: Mapping[str, str], authorization: str | None) -> Grant:
        """Authenticate an upgrade: ``?token=``, or a token or API key in ``Authorization``."""
        token = query.get("token")
        if token:
            return self.redeem(token)
        if authorization is None or not authorization.strip():
            raise AuthError("Missing Authorization header")
        value = authorization.strip()
        if secrets.compare_digest(value.encode(), self.api_key.encode()):
            return Grant(kind="api_key_header", max_session_seconds=MAX_SESSION)
        if value in self._tokens:
            return self.redeem(value)
        raise AuthError("Invalid API key or token")


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def proxy_auth(
    credential: str, authorization: str | None, subprotocols: Sequence[str]
) -> tuple[AuthKind, str | None] | None:
    """How an upgrade on the proxy path proves the team ``credential``, or ``None``.

    Returns ``("proxy_header", None)`` for ``Authorization: Bearer <credential>``, or
    ``("proxy_subprotocol", offered)`` when one offered subprotocol is
    ``keypool-token.<credential>`` (the server must select it). The header is looked at
    first; either one proving the credential is enough.
    """
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and _same(value.strip(), credential):
            return "proxy_header", None
    for offered in subprotocols:
        if offered.startswith(PROXY_SUBPROTOCOL_PREFIX) and _same(
            offered[len(PROXY_SUBPROTOCOL_PREFIX) :], credential
        ):
            return "proxy_subprotocol", offered
    return None
