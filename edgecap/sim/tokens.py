"""A KeyPool-compatible token service SIMULATOR.

``GET {base}/v3/token?expires_in_seconds=N[&max_session_duration_seconds=M]``
(any path ending in ``/v3/token``; the advertised base is ``/v1/assemblyai``)
with ``Authorization: Bearer <team credential>`` mints a temporary token from
the in-process streaming simulator and answers ``{"token", "expires_in_seconds"}``.

``mode`` switches the answer at runtime to model the proxy's failures:
``ok``, ``401``, ``403``, ``429`` (with ``Retry-After``), ``502``, ``503``,
``no_token`` (200 without ``token``) and ``slow`` (``ok`` after a delay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Literal, Protocol, get_args

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from edgecap.sim.faults import KEYPOOL_ERRORS
from edgecap.sim.http import (
    SERVER_HEADER,
    LoopbackServer,
    int_param,
    json_response,
    split_target,
)
from edgecap.sim.records import Notifier, TokenRequestRecord

log = logging.getLogger("edgecap.sim")

TokenMode = Literal["ok", "401", "403", "429", "502", "503", "no_token", "slow"]
TOKEN_MODES: tuple[str, ...] = get_args(TokenMode)
DEFAULT_BASE_PATH = "/v1/assemblyai"

_FAILURES: dict[str, tuple[int, str]] = {
    str(status): (status, text) for status, text in KEYPOOL_ERRORS.items()
}


class TokenMinter(Protocol):
    """Anything that mints streaming tokens (the streaming simulator)."""

    def mint_token(
        self, expires_in_seconds: int, max_session_duration_seconds: int | None = None
    ) -> str: ...


class TokenServiceSimulator(LoopbackServer):
    """KeyPool-compatible token service in front of a :class:`TokenMinter`."""

    _kind = "token service simulator"

    def __init__(
        self,
        minter: TokenMinter,
        *,
        credential: str = "sim-team-token",
        mode: TokenMode = "ok",
        host: str = "127.0.0.1",
        port: int = 0,
        base_path: str = DEFAULT_BASE_PATH,
        slow_delay_seconds: float = 2.0,
        retry_after_seconds: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.minter = minter
        self.credential = credential
        self.mode = mode
        self.host = host
        self.requested_port = port
        self.base_path = base_path.rstrip("/")
        self.slow_delay_seconds = slow_delay_seconds
        self.retry_after_seconds = retry_after_seconds
        self.clock = clock
        self.requests: list[TokenRequestRecord] = []
        self._notifier = Notifier()
        self._closing = asyncio.Event()
        self.requests_started = 0
        """Requests received, answered or not (`requests` holds the answered ones)."""
        self._server: Server | None = None
        self._port: int | None = None

    @property
    def mode(self) -> TokenMode:
        """How the next requests are answered (see the module docstring)."""
        return self._mode

    @mode.setter
    def mode(self, value: TokenMode) -> None:
        if value not in TOKEN_MODES:
            raise ValueError(f"unknown token service mode {value!r}; one of {TOKEN_MODES}")
        self._mode = value

    async def start(self) -> None:
        """Start listening; ``port`` is known afterwards."""
        self._server = await serve(
            _refuse_websocket,
            self.host,
            self.requested_port,
            process_request=self._process_request,
            server_header=SERVER_HEADER,
            open_timeout=None,  # a slow or hanging answer (a fault) is not cut by the server
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("simulator: KeyPool token service SIMULATOR listening on %s", self.base_url)

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._closing.set()  # hanging ("slow") answers end now
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1/assemblyai`` (append ``/v3/token``)."""
        return f"http://{self.host}:{self.port}{self.base_path}"

    @property
    def token_url(self) -> str:
        """The full token URL."""
        return self.base_url + "/v3/token"

    async def wait_for_requests(self, count: int) -> list[TokenRequestRecord]:
        """Wait until ``count`` requests were answered; returns all records.

        Gives up with ``TimeoutError`` after ``wait_timeout`` seconds.
        """
        await self._notifier.wait_until(lambda: len(self.requests) >= count, f"{count} requests")
        return list(self.requests)

    async def wait_for_started(self, count: int) -> None:
        """Wait until ``count`` requests arrived, answered or not (a hanging ``slow``)."""
        await self._notifier.wait_until(
            lambda: self.requests_started >= count, f"{count} requests started"
        )

    @property
    def wait_timeout(self) -> float:
        """Seconds after which ``wait_for_requests`` gives up."""
        return self._notifier.timeout

    @wait_timeout.setter
    def wait_timeout(self, seconds: float) -> None:
        self._notifier.timeout = seconds

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response:
        self.requests_started += 1
        self._notifier.notify()
        path, params = split_target(request.path)
        auth = request.headers.get("Authorization")
        expected = f"Bearer {self.credential}"
        credential_ok = auth is not None and secrets.compare_digest(
            auth.strip().encode(), expected.encode()
        )
        mode = self.mode
        record = TokenRequestRecord(
            at=self.clock(),
            path=path,
            params=params,
            authorization_present=auth is not None,
            credential_ok=credential_ok,
            status=0,
            mode=mode,
        )
        response = await self._answer(path, params, credential_ok, mode, record)
        record.status = response.status_code
        self.requests.append(record)
        self._notifier.notify()
        log.info("simulator: token service %s mode=%s -> %d", path, mode, response.status_code)
        return response

    async def _answer(
        self,
        path: str,
        params: dict[str, str],
        credential_ok: bool,
        mode: TokenMode,
        record: TokenRequestRecord,
    ) -> Response:
        if not path.endswith("/v3/token"):
            return json_response(404, {"error": f"not found: {path}", "simulator": True})
        if not credential_ok:
            return json_response(401, {"error": KEYPOOL_ERRORS[401]})
        if mode in _FAILURES:
            status, message = _FAILURES[mode]
            headers = {"Retry-After": str(self.retry_after_seconds)} if status == 429 else {}
            return json_response(status, {"error": message}, headers)
        if mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.slow_delay_seconds)
        try:
            expires = int_param(params, "expires_in_seconds")
            if expires is None:
                raise ValueError("expires_in_seconds is required")
            max_session = int_param(params, "max_session_duration_seconds")
            if mode == "no_token":
                return json_response(200, {"expires_in_seconds": expires, "simulator": True})
            token = self.minter.mint_token(expires, max_session)
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        record.token = token
        return json_response(200, {"token": token, "expires_in_seconds": expires})


async def _refuse_websocket(ws: ServerConnection) -> None:
    """Never reached: every request is answered from ``process_request``."""
    await ws.close(1008, "token service simulator speaks HTTP only")
