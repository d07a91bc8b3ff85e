"""HTTP on the simulator's WebSocket port: POST requests and the client-secrets endpoint.

websockets answers plain HTTP from ``process_request`` but parses only GET requests.
:class:`PostAwareConnection` reads a POST request's head and body itself, keeps them on the
connection (``http_method``, ``http_body``) and hands websockets the same request as a
body-less GET, so ``process_request`` can answer it like any other (and websockets closes
the connection after the answer, as for every non-upgrade response).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Literal, get_args

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from edgecap.sim.http import json_response
from edgecap.sim.openai.protocol import KEYPOOL_SECRETS_PATH, RealtimeError
from edgecap.sim.openai.records import SecretRequestRecord
from edgecap.sim.openai.secrets import SecretStore, parse_secret_request
from edgecap.sim.records import Notifier

log = logging.getLogger("edgecap.sim")

SecretsMode = Literal["ok", "401", "403", "429", "500", "502", "503", "hang", "slow"]
SECRETS_MODES: tuple[str, ...] = get_args(SecretsMode)
MAX_BODY_BYTES = 1024 * 1024

KEYPOOL_TEXTS: dict[int, str] = {
    401: "invalid team token",
    403: "this team token may not use openai",
    429: "rate limited",
    500: "internal error",
    502: "upstream failure",
    503: "no upstream key available",
}
OPENAI_FAILURES: dict[int, RealtimeError] = {
    401: RealtimeError("Incorrect API key provided (simulated).", code="invalid_api_key"),
    403: RealtimeError(
        "You are not allowed to create Realtime client secrets with this key (simulated)."
    ),
    429: RealtimeError("Rate limit reached for requests (simulated).", code="rate_limit_exceeded"),
    500: RealtimeError(
        "The server had an error while processing your request.", kind="server_error"
    ),
    502: RealtimeError("Bad gateway (simulated).", kind="server_error"),
    503: RealtimeError("The engine is currently overloaded (simulated).", kind="server_error"),
}


class PostAwareConnection(ServerConnection):
    """A :class:`ServerConnection` whose ``process_request`` also sees POST requests."""

    http_method: str = "GET"
    http_body: bytes | None = b""  # None: the body was over MAX_BODY_BYTES
    _head: bytes | None = b""  # bytes held back until the request is known; None: passing

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            super().data_received(data)
            return
        held = self._head + data
        if len(held) < 5:
            self._head = held
            return
        if not held.startswith(b"POST "):
            self._head = None
            super().data_received(held)
            return
        end = held.find(b"\r\n\r\n")
        if end < 0:
            self._head = held
            return
        lines = held[:end].split(b"\r\n")
        length = _content_length(lines[1:])
        body = held[end + 4 :]
        if len(body) < length <= MAX_BODY_BYTES:
            self._head = held
            return
        self._head = None
        self.http_method = "POST"
        self.http_body = body[:length] if length <= MAX_BODY_BYTES else None
        _, path, version = lines[0].split(b" ", 2)
        kept = [line for line in lines[1:] if not _is_body_header(line)]
        super().data_received(b"\r\n".join([b"GET " + path + b" " + version, *kept]) + b"\r\n\r\n")


def _is_body_header(line: bytes) -> bool:
    name = line.split(b":", 1)[0].strip().lower()
    return name in (b"content-length", b"transfer-encoding")


def _content_length(lines: list[bytes]) -> int:
    for line in lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return 0


def openai_error(status: int, error: RealtimeError) -> Response:
    """An HTTP error with OpenAI's ``{"error": {message, type, param, code}}`` body."""
    body = {k: v for k, v in error.body().items() if k != "event_id"}
    return json_response(status, {"error": body})


class SecretsEndpoint:
    """``POST /v1/realtime/client_secrets`` (Bearer API key) and its KeyPool-style twin
    ``POST /v1/openai/v1/realtime/client_secrets`` (Bearer team credential)."""

    def __init__(
        self,
        store: SecretStore,
        credential: str,
        notifier: Notifier,
        closing: asyncio.Event,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.credential = credential
        self.mode: SecretsMode = "ok"
        self.slow_delay_seconds = 2.0
        self.retry_after_seconds = 1
        self.requests: list[SecretRequestRecord] = []
        self.started = 0  # requests received, answered or not
        self._notifier = notifier
        self._closing = closing
        self._clock = clock

    async def answer(
        self, path: str, method: str, authorization: str | None, body: bytes | None
    ) -> Response:
        self.started += 1
        self._notifier.notify()
        if method != "POST":
            return openai_error(405, RealtimeError(f"Invalid method for {path}: use POST."))
        keypool = path == KEYPOOL_SECRETS_PATH
        expected = self.credential if keypool else self.store.api_key
        scheme, _, value = (authorization or "").strip().partition(" ")
        ok = scheme.lower() == "bearer" and secrets.compare_digest(
            value.strip().encode(), expected.encode()
        )
        record = SecretRequestRecord(
            at=self._clock(),
            path=path,
            keypool=keypool,
            authorization_present=authorization is not None,
            credential_ok=ok,
            mode=self.mode,
            body=_json_or_none(body),
        )
        response = await self._respond(record, keypool, ok, body)
        record.status = response.status_code
        self.requests.append(record)
        self._notifier.notify()
        log.info(
            "simulator: openai client_secrets %s mode=%s -> %d", path, record.mode, record.status
        )
        return response

    async def _respond(
        self, record: SecretRequestRecord, keypool: bool, ok: bool, body: bytes | None
    ) -> Response:
        if not ok:
            return self._failure(401, keypool)
        mode = self.mode
        if mode.isdigit():
            return self._failure(int(mode), keypool)
        if mode == "hang":
            await self._closing.wait()  # until the simulator stops
            return self._failure(503, keypool)
        if mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.slow_delay_seconds)
        if body is None:
            return openai_error(413, RealtimeError("Request body too large."))
        try:
            request = parse_secret_request(body)
        except RealtimeError as error:
            return openai_error(400, error)
        secret = self.store.mint(request, via="keypool" if keypool else "api_key")
        record.value, record.expires_at = secret.value, secret.expires_at
        payload = {
            "value": secret.value,
            "expires_at": secret.expires_at,
            "session": secret.session,
        }
        return json_response(200, payload)

    def _failure(self, status: int, keypool: bool) -> Response:
        headers = {"Retry-After": str(self.retry_after_seconds)} if status == 429 else {}
        if keypool:
            text = KEYPOOL_TEXTS.get(status, "simulated failure")
            return json_response(status, {"error": text}, headers)
        error = OPENAI_FAILURES.get(status, RealtimeError(f"Simulated HTTP {status}."))
        response = openai_error(status, error)
        for name, value in headers.items():
            response.headers[name] = value
        return response


def _json_or_none(body: bytes | None) -> object:
    if not body:
        return None
    try:
        parsed: object = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return parsed
