"""The provider side over HTTP (httpx): mint an AssemblyAI token, forward a Sync request,
mint an OpenAI client secret. Thin: the key goes in the header the provider wants, the
answer comes back as it is, and a failure becomes an `Answer` the device can act on."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from edgecap import __version__


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    """How long the provider took."""
    failure: str | None = None
    """None when the provider answered; else why not (an outcome label for metrics)."""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _error(status: int, code: str, message: str, seconds: float) -> Answer:
    body = json.dumps({"error": message, "code": code}).encode()
    return Answer(status, body, seconds=seconds, failure=code)


class Upstream:
    def __init__(self, timeout: float, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            headers={"User-Agent": f"edgecap-tokens/{__version__}"},
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, int] | None = None,
        content: bytes | None = None,
        provider: str = "AssemblyAI",
    ) -> Answer:
        started = time.monotonic()
        try:
            response = await self._client.request(
                method, url, headers=dict(headers), params=params, content=content
            )
        except httpx.TimeoutException:
            return _error(
                504, "upstream_timeout", f"{provider} did not answer in time", self._since(started)
            )
        except httpx.HTTPError as exc:
            return _error(
                502,
                "upstream_unreachable",
                f"cannot reach {provider} ({type(exc).__name__})",
                self._since(started),
            )
        seconds = self._since(started)
        status = response.status_code
        if status in (401, 403):  # our key: not the device's fault, and not its business
            return _error(
                502,
                "upstream_refused_key",
                f"{provider} refused the token service's API key (HTTP {status})",
                seconds,
            )
        if status >= 500:
            return _error(502, "upstream_error", f"{provider} answered HTTP {status}", seconds)
        passed = {}
        if "retry-after" in response.headers:
            passed["Retry-After"] = response.headers["retry-after"]
        return Answer(
            status,
            response.content,
            response.headers.get("content-type", "application/json"),
            passed,
            seconds,
            None if status == 200 else f"upstream_{status}",
        )

    @staticmethod
    def _since(started: float) -> float:
        return time.monotonic() - started
