"""Single-use temporary tokens for v3 streaming sessions (httpx adapter).

Two sources with one shape: the central token service (KeyPool-compatible:
`GET {base}/v3/token` with `Authorization: Bearer <team credential>`) and, in `api_key` mode,
AssemblyAI's own mint endpoint (`GET https://streaming.assemblyai.com/v3/token` with the raw
key in `Authorization`). Both answer `{"token": ..., "expires_in_seconds": ...}`.

A token opens exactly one session: callers fetch a fresh one for every connect.
`TokenPrefetcher` keeps one spare, unused token ready (renewed before it expires) so a
reconnect or a rotation needs no round trip, and so that an outage of the token service
never touches a session that is already streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from edgecap import __version__

log = logging.getLogger(__name__)

AAI_MAX_SESSION_SECONDS = 10800
SESSION_CAP_MARGIN_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Token:
    value: str = field(repr=False)
    expires_at: float
    """Monotonic deadline for opening a session with this token."""
    obtained_at: float

    def usable(self, now: float, margin: float = 2.0) -> bool:
        return now + margin < self.expires_at


class TokenError(Exception):
    """A token could not be obtained. `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None, kind: str = "error") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def token_session_limit(max_session_seconds: int) -> int:
    """max_session_duration_seconds for the token: the cap plus a margin, as a backstop."""
    return max(60, min(max_session_seconds + SESSION_CAP_MARGIN_SECONDS, AAI_MAX_SESSION_SECONDS))


def explain_token_status(
    status: int, source: str, retry_after: str | None = None, *, provider: str = "AssemblyAI"
) -> str:
    """One line: what an HTTP status from the token source means and what to do."""
    if source == "token service":
        hints = {
            401: "the team credential is wrong or revoked; check auth.credential_file "
            "(or $CREDENTIALS_DIRECTORY/token-service-credential)",
            403: f"this credential may not use {provider}; ask the token-service admin to grant it",
            429: "the token service is rate limiting this device; edgecap backs off",
            502: f"the token service could not reach {provider}; usually transient",
            503: f"the token service has no {provider} key or capacity right now; transient",
        }
    else:
        hints = {
            401: "AssemblyAI rejected the API key; check auth.api_key_file "
            "(or $CREDENTIALS_DIRECTORY/assemblyai-api-key)",
            403: "this AssemblyAI account may not use streaming",
            429: "AssemblyAI is rate limiting token requests; edgecap backs off",
        }
    hint = hints.get(status)
    if hint is None:
        hint = "server error, usually transient" if status >= 500 else "unexpected answer"
    if retry_after:
        hint += f" (Retry-After: {retry_after})"
    return f"{source} answered HTTP {status}: {hint}"


def transport_for(url: str) -> httpx.AsyncHTTPTransport | None:
    """The transport for `url`; None = httpx's default (TLS verified against certifi's CAs).

    A plain-http URL never uses TLS (redirects are not followed, and proxies from the
    environment get httpx's default transports), so it gets an SSL context without CA
    certificates (one that would fail closed) instead of one holding certifi's whole bundle
    for the life of the daemon (about 1.2 MB resident).
    """
    if httpx.URL(url).scheme != "http":
        return None
    return httpx.AsyncHTTPTransport(verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


class TokenClient:
    """Fetches one fresh token per call."""

    def __init__(
        self,
        url: str,
        authorization: str,
        *,
        source: str,
        expires_in_seconds: int,
        max_session_seconds: int,
        timeout: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = url
        self._headers = {
            "Authorization": authorization,
            "User-Agent": f"edgecap/{__version__}",
            "Accept": "application/json",
        }
        self.source = source
        self._params = {
            "expires_in_seconds": expires_in_seconds,
            "max_session_duration_seconds": token_session_limit(max_session_seconds),
        }
        self._timeout = timeout
        self._client = client or httpx.AsyncClient(timeout=timeout, transport=transport_for(url))

    @property
    def url(self) -> str:
        return self._url

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self) -> Token:
        started = time.monotonic()
        response = await answered(
            self._client.get(
                self._url, params=self._params, headers=self._headers, timeout=self._timeout
            ),
            source=self.source,
            url=self._url,
            limit_s=self._timeout,
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenError(
                f"{self.source} at {self._url} answered 200 without a 'token' field; it is "
                "not a KeyPool-compatible token endpoint (the URL should end before /v3/token)",
                status=200,
                kind="malformed",
            )
        expires_in = body.get("expires_in_seconds") if isinstance(body, dict) else None
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            expires_in = self._params["expires_in_seconds"]
        return Token(token, started + float(expires_in), started)


async def answered(
    request: Awaitable[httpx.Response],
    *,
    source: str,
    url: str,
    limit_s: float,
    provider: str = "AssemblyAI",
) -> httpx.Response:
    """The response to `request` if it is a 200; else a `TokenError` saying what went
    wrong and what to do (timeout after `limit_s`, unreachable, an HTTP status explained)."""
    try:
        response = await request
    except httpx.TimeoutException as exc:
        raise TokenError(
            f"{source} at {url} did not answer within {limit_s:g} s; "
            "check the network or raise auth.request_timeout_seconds",
            kind="timeout",
        ) from exc
    except httpx.ConnectError as exc:
        raise TokenError(
            f"cannot reach the {source} at {url} ({exc}); check the URL, DNS and network",
            kind="network",
        ) from exc
    except httpx.HTTPError as exc:
        raise TokenError(f"request to the {source} failed: {exc}", kind="network") from exc
    if response.status_code != 200:
        raise TokenError(
            explain_token_status(
                response.status_code,
                source,
                response.headers.get("Retry-After"),
                provider=provider,
            ),
            status=response.status_code,
            kind="http",
        )
    return response


class TokenSource(Protocol):
    async def fetch(self) -> Token: ...


class CredentialSource(TokenSource, Protocol):
    """What opens each session: a token client, or a credential used as it is."""

    @property
    def source(self) -> str: ...

    @property
    def url(self) -> str:
        """Where it is fetched from ("" when it is not fetched)."""
        ...

    async def aclose(self) -> None: ...


class StaticCredential:
    """A credential that opens every session itself, nothing minted: the team credential
    through a KeyPool-compatible proxy, or an API key sent in the upgrade's header."""

    def __init__(self, value: str, source: str, *, clock: Callable[[], float] = time.monotonic):
        self._value = value
        self.source = source
        self._clock = clock
        self.url = ""

    async def fetch(self) -> Token:
        now = self._clock()
        return Token(self._value, float("inf"), now)

    async def aclose(self) -> None:
        pass


def renew_at(token: Token, margin: float = 5.0) -> float:
    """When a spare token is replaced: at 3/4 of its lifetime or `margin` seconds before it
    expires, whichever is earlier, but not before half of it (short-lived tokens)."""
    life = token.expires_at - token.obtained_at
    latest = min(token.obtained_at + life * 0.75, token.expires_at - margin)
    return max(token.obtained_at + life * 0.5, latest)


class TokenPrefetcher:
    """Holds one spare token from `source`; `get()` hands it out (or fetches one).

    The background refill runs only while `active` (the engine activates it once a
    session is streaming, so a device without audio spends no token). Refill failures are
    logged and retried with backoff; they never affect a running session.
    """

    def __init__(
        self,
        source: TokenSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_min_seconds: float = 1.0,
        retry_max_seconds: float = 60.0,
        on_failure: Callable[[TokenError], None] | None = None,
    ) -> None:
        self._source = source
        self._clock = clock
        self._retry_min = retry_min_seconds
        self._retry_max = retry_max_seconds
        self._on_failure = on_failure
        self._spare: Token | None = None
        self._active = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.refill_failures = 0
        """Consecutive failed refills (0 when the last one worked)."""
        self.fetched = 0

    @property
    def spare_ready(self) -> bool:
        return self._spare is not None and self._spare.usable(self._clock())

    @property
    def active(self) -> bool:
        return self._active

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="edgecap-token-prefetch")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def activate(self) -> None:
        if not self._active:
            self._active = True
            self._wake.set()

    def deactivate(self) -> None:
        self._active = False

    def discard(self) -> None:
        """Throw the spare away (after an auth failure: re-mint)."""
        self._spare = None
        self._wake.set()

    async def get(self) -> tuple[Token, bool]:
        """A token for the next session: the spare if usable (True), else a fresh one."""
        spare, self._spare = self._spare, None
        self._wake.set()
        if spare is not None and spare.usable(self._clock()):
            return spare, True
        token = await self._fetch()
        return token, False

    async def _fetch(self) -> Token:
        try:
            token = await self._source.fetch()
        except TokenError as exc:
            if self._on_failure is not None:
                self._on_failure(exc)
            raise
        self.fetched += 1
        return token

    async def _wait(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _run(self) -> None:
        backoff = self._retry_min
        while True:
            if not self._active:
                await self._wait(None)
                continue
            spare = self._spare
            if spare is not None:
                due = renew_at(spare) - self._clock()
                if due > 0:
                    await self._wait(due)
                    continue
            try:
                token = await self._fetch()
            except TokenError as exc:
                self.refill_failures += 1
                level = logging.WARNING if self.refill_failures == 1 else logging.DEBUG
                log.log(
                    level,
                    "could not fetch a spare token (%s); the running session is not affected, "
                    "retrying in %.0f s",
                    exc,
                    backoff,
                )
                await self._wait(backoff)
                backoff = min(self._retry_max, backoff * 2)
                continue
            if self.refill_failures:
                log.info(
                    "spare token fetched again after %d failed attempt(s)", self.refill_failures
                )
            self.refill_failures = 0
            backoff = self._retry_min
            self._spare = token
