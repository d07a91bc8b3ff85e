"""The Sync API over HTTP (thin httpx adapter): one POST, its body either whole (a retry
from the pending spool) or produced while the person speaks (an async iterator: httpx sends
it with `Transfer-Encoding: chunked`, so only the last stretch is left to upload at the end
of speech). Decisions (what to send, what an answer means) are the protocol object's."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import httpx

from edgecap.providers.assemblyai.sync import (
    MAX_BODY_BYTES,
    SyncProtocol,
    SyncProtocolError,
    SyncTranscript,
)

MAX_ANSWER_BYTES = 4 * 1024 * 1024


class SyncNetworkError(Exception):
    """No answer: the connection failed, broke or timed out."""


class SyncTransport:
    def __init__(
        self, protocol: SyncProtocol, credential: Callable[[], str], *, timeout: float
    ) -> None:
        self.protocol = protocol
        self._credential = credential
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), follow_redirects=False
        )

    async def send(self, audio: bytes | AsyncIterator[bytes]) -> SyncTranscript:
        """POST one utterance; the transcript, or SyncRefused / SyncProtocolError /
        SyncNetworkError."""
        p = self.protocol
        boundary = secrets.token_hex(16)
        head, tail = p.body_head(boundary), p.body_tail(boundary)
        content: bytes | AsyncIterator[bytes]
        if isinstance(audio, bytes):  # captured in full: a retry from the pending spool
            content, url = head + audio + tail, p.whole_url
        else:  # still being captured: uploaded as it comes (chunked)
            content, url = _framed(head, audio, tail), p.url
        try:
            request = self._client.build_request(
                "POST", url, headers=p.headers(self._credential(), boundary), content=content
            )
            response = await self._client.send(request, stream=True)
            try:
                body = await _read_bounded(response)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise SyncNetworkError(_describe(exc, request_host(p.url))) from exc
        return p.read(response.status_code, body, response.headers.get("retry-after"))

    async def aclose(self) -> None:
        await self._client.aclose()


async def _framed(head: bytes, audio: AsyncIterator[bytes], tail: bytes) -> AsyncIterator[bytes]:
    yield head
    sent = 0
    async for chunk in audio:
        sent += len(chunk)
        if sent > MAX_BODY_BYTES:
            raise SyncProtocolError("the utterance is over 40 MB (a bug: it is cut at 120 s)")
        yield chunk
    yield tail


async def _read_bounded(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise SyncProtocolError("the answer is over 4 MB")
    return bytes(body)


def request_host(url: str) -> str:
    return httpx.URL(url).netloc.decode("ascii", "replace")


def _describe(exc: httpx.HTTPError, host: str) -> str:
    kind = type(exc).__name__
    text = str(exc).strip()
    detail = f"{kind}: {text[:160]}" if text else kind
    if isinstance(exc, httpx.TimeoutException):
        what = f"{host} did not answer in time"
    elif isinstance(exc, httpx.ConnectError):
        what = f"no connection to {host}"
    elif isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
        what = f"the connection to {host} broke during the request"
    else:
        what = f"network error talking to {host}"
    return f"{what} ({detail}); the utterance is kept"
