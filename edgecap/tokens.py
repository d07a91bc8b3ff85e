"""Single-use temporary tokens for v3 streaming sessions (httpx adapter).

Two sources with one shape: the central token service (KeyPool-compatible:
`GET {base}/v3/token` with `Authorization: Bearer <team credential>`) and, in `api_key` mode,
AssemblyAI's own mint endpoint (`GET https://streaming.assemblyai.com/v3/token` with the raw
key in `Authorization`). Both answer `{"token": ..., "expires_in_seconds": ...}`.

A token opens exactly one session: callers fetch a fresh one for every connect.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from edgecap import __version__
from edgecap.config import Config, Secrets

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


def explain_token_status(status: int, source: str, retry_after: str | None = None) -> str:
    """One line: what an HTTP status from the token source means and what to do."""
    if source == "token service":
        hints = {
            401: "the team credential is wrong or revoked; check auth.credential_file "
            "(or $CREDENTIALS_DIRECTORY/token-service-credential)",
            403: "this credential may not use AssemblyAI; ask the token-service admin to grant it",
            429: "the token service is rate limiting this device; edgecap backs off",
            502: "the token service could not reach AssemblyAI; usually transient",
            503: "the token service has no AssemblyAI key or capacity right now; transient",
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
        self._client = client or httpx.AsyncClient(timeout=timeout)

    @property
    def url(self) -> str:
        return self._url

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self) -> Token:
        started = time.monotonic()
        try:
            response = await self._client.get(
                self._url, params=self._params, headers=self._headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise TokenError(
                f"{self.source} at {self._url} did not answer within {self._timeout:g} s; "
                "check the network or raise auth.request_timeout_seconds",
                kind="timeout",
            ) from exc
        except httpx.ConnectError as exc:
            raise TokenError(
                f"cannot reach the {self.source} at {self._url} ({exc}); check the URL, DNS "
                "and network",
                kind="network",
            ) from exc
        except httpx.HTTPError as exc:
            raise TokenError(f"request to the {self.source} failed: {exc}", kind="network") from exc
        if response.status_code != 200:
            raise TokenError(
                explain_token_status(
                    response.status_code, self.source, response.headers.get("Retry-After")
                ),
                status=response.status_code,
                kind="http",
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


def make_token_client(config: Config, secrets: Secrets) -> TokenClient:
    """The token client the configuration asks for."""
    auth = config.auth
    if auth.mode == "api_key":
        return TokenClient(
            auth.api_token_url,
            secrets.api_key or "",
            source="AssemblyAI",
            expires_in_seconds=auth.token_expires_in_seconds,
            max_session_seconds=config.session.max_session_seconds,
            timeout=auth.request_timeout_seconds,
        )
    return TokenClient(
        (auth.token_service_url or "").rstrip("/") + "/v3/token",
        f"Bearer {secrets.token_service_credential or ''}",
        source="token service",
        expires_in_seconds=auth.token_expires_in_seconds,
        max_session_seconds=config.session.max_session_seconds,
        timeout=auth.request_timeout_seconds,
    )
