"""Device credentials (pure): made, hashed for storage, and read from a request.

A credential is 32 random bytes (``ect_`` + URL-safe base64, 47 characters). Only its
SHA-256 is stored: with that much entropy a slow password hash adds nothing (nobody can
guess the preimage), and a plain digest lets every request find its device with one
indexed lookup. The digest is never logged either; logs name the device.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

PREFIX = "ect_"
SUBPROTOCOL_PREFIX = "keypool-token."
MAX_CREDENTIAL_CHARS = 256


def new_credential() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def credential_hash(credential: str) -> str:
    return hashlib.sha256(credential.encode("utf-8", "surrogatepass")).hexdigest()


def bearer(authorization: str | None) -> str | None:
    """The credential in ``Authorization: Bearer <credential>``, or None."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > MAX_CREDENTIAL_CHARS:
        return None
    return value


def from_upgrade(
    authorization: str | None, subprotocols: Sequence[str]
) -> tuple[str | None, str | None]:
    """(credential, the subprotocol to echo) from a WebSocket upgrade: the Bearer header
    first, else an offered ``keypool-token.<credential>`` subprotocol (echoed back, as
    browsers fail a handshake whose offered subprotocol is not selected)."""
    found = bearer(authorization)
    if found is not None:
        return found, None
    for offered in subprotocols:
        if offered.startswith(SUBPROTOCOL_PREFIX):
            value = offered[len(SUBPROTOCOL_PREFIX) :]
            if value and len(value) <= MAX_CREDENTIAL_CHARS:
                return value, offered
    return None, None


def valid_device_name(name: str) -> str | None:
    """Why `name` cannot name a device, or None."""
    if not 1 <= len(name) <= 64:
        return "must be 1 to 64 characters"
    if not all(c.isascii() and (c.isalnum() or c in "-_.") for c in name):
        return "may hold only ASCII letters, digits, '-', '_' and '.'"
    return None
