"""OpenAI Realtime ephemeral client secrets (`ek_...`), minted for the device (HTTP).

`POST {base}/v1/realtime/client_secrets` with a transcription session and
`expires_after.seconds` returns `{"value": "ek_...", "expires_at": <unix>, "session": {...}}`.
Unlike AssemblyAI's single-use tokens a secret opens any number of sessions until it
expires, so `ReusedSecret` hands the same one out and mints the next only when it is
about to expire. The base is OpenAI's API (`https://api.openai.com`, an API key in
`Authorization: Bearer`) or, so that no key sits on the device, a KeyPool-compatible token
service (`https://keypool.example.com/v1/openai`, the team credential as the Bearer).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import httpx

from edgecap import __version__
from edgecap.auth.tokens import Token, TokenError, answered, renew_at, transport_for

CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets"


class ClientSecretClient:
    """Mints one ephemeral secret per call (`source` names it in errors)."""

    def __init__(
        self,
        url: str,
        authorization: str,
        *,
        source: str,
        session: Mapping[str, object],
        expires_in_seconds: int,
        timeout: float,
        client: httpx.AsyncClient | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._headers = {
            "Authorization": authorization,
            "User-Agent": f"edgecap/{__version__}",
            "Accept": "application/json",
        }
        self.source = source
        self._body = {
            "expires_after": {"anchor": "created_at", "seconds": expires_in_seconds},
            "session": dict(session),
        }
        self._timeout = timeout
        self._wall = wall
        self._client = client or httpx.AsyncClient(timeout=timeout, transport=transport_for(url))

    @property
    def url(self) -> str:
        return self._url

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self) -> Token:
        started, wall = time.monotonic(), self._wall()
        response = await answered(
            self._client.post(
                self._url, json=self._body, headers=self._headers, timeout=self._timeout
            ),
            source=self.source,
            url=self._url,
            limit_s=self._timeout,
            provider="OpenAI",
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        value = body.get("value") if isinstance(body, dict) else None
        expires_at = body.get("expires_at") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value or value.strip() != value:
            raise TokenError(
                f"{self.source} at {self._url} answered 200 without a client secret ('value'); "
                f"it is not an OpenAI-compatible {CLIENT_SECRETS_PATH} endpoint",
                status=200,
                kind="malformed",
            )
        if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
            raise TokenError(
                f"{self.source} at {self._url} answered without 'expires_at'",
                status=200,
                kind="malformed",
            )
        return Token(value, started + (float(expires_at) - wall), started)


class ReusedSecret:
    """The same secret for every session until it nears its expiry (`renew_at`), then a
    new one: a reconnect costs no round trip, and the minting service sees one request
    per secret lifetime, not one per session."""

    def __init__(self, source: ClientSecretClient, clock: Callable[[], float] = time.monotonic):
        self._source = source
        self._clock = clock
        self._secret: Token | None = None
        self.fetched = 0

    @property
    def source(self) -> str:
        return self._source.source

    @property
    def url(self) -> str:
        return self._source.url

    async def fetch(self) -> Token:
        secret = self._secret
        if secret is None or self._clock() >= renew_at(secret):
            secret = self._secret = await self._source.fetch()
            self.fetched += 1
        return secret

    def discard(self) -> None:
        """Forget the secret (refused: the next session mints a new one)."""
        self._secret = None

    async def aclose(self) -> None:
        await self._source.aclose()
