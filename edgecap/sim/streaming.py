"""A local SIMULATOR of AssemblyAI's v3 Universal-Streaming API.

Faithful to the v3 wire protocol as documented up to 2026 (the team's protocol notes,
``assemblyai-v3-protocol.md`` sections 1-4 and 7, and AssemblyAI's docs as cited in
:mod:`edgecap.sim.params` and :mod:`edgecap.sim.speakers`), in
the current close-code era (after 2026-02-25: 3006-3009 rather than 3005 for
in-session errors). It is not AssemblyAI: it recognises nothing, turning each
detected stretch of speech into the next line of a script, and it says so
(``Server: edgecap-simulator``, ``sim-`` tokens, ``"simulator": true`` in
``Begin.configuration``, ``simulator:`` log lines).

Endpoints, on one port (``127.0.0.1:0`` by default):

* ``GET /v3/token?expires_in_seconds=N[&max_session_duration_seconds=M]`` with
  ``Authorization: <api key>`` mints a single-use temporary token;
* ``/v3/ws?...`` is the streaming WebSocket: ``?token=<token>``, or
  ``Authorization: <api key>`` (raw, as AssemblyAI requires: a ``Bearer`` prefix is a
  wrong key, answered like the real server's documented auth failures, an ``Error`` frame
  and close 1008 ``Unauthorized Connection: ...`` before ``Begin``);
* ``/v1/assemblyai/v3/ws?...`` is the same session behind a KeyPool-compatible proxy:
  the team credential as ``Authorization: Bearer <credential>`` or as the subprotocol
  ``keypool-token.<credential>`` (selected, so echoed in ``Sec-WebSocket-Protocol``), no
  token needed; a missing or wrong credential is HTTP 401 at the upgrade, and a
  ``handshake`` :class:`FaultPlan` refuses it with 403, 429, 502 or 503 as KeyPool would.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from edgecap.sim.credentials import TokenStore, proxy_auth
from edgecap.sim.faults import KEYPOOL_ERRORS, FaultPlan
from edgecap.sim.http import (
    SERVER_HEADER,
    LoopbackServer,
    int_param,
    json_response,
    split_target,
)
from edgecap.sim.records import (
    HandshakeOutcome,
    HandshakeRecord,
    Message,
    Notifier,
    SessionRecord,
)
from edgecap.sim.session import SimSession
from edgecap.sim.settings import SessionEnv, StreamingSettings
from edgecap.sim.synthetic import SYNTHETIC_TURN_TEXT
from edgecap.sim.turns import Script

log = logging.getLogger("edgecap.sim")

WS_PATH = "/v3/ws"
PROXY_WS_PATH = "/v1/assemblyai/v3/ws"
TOKEN_PATH = "/v3/token"  # noqa: S105 - a URL path
# Large enough to receive an oversized message and answer it with 1009 ourselves.
_WIRE_MAX_SIZE = 4 * 1024 * 1024


class StreamingSimulator(LoopbackServer):
    """The AssemblyAI v3 streaming simulator; use with ``async with`` or start/stop.

    ``settings`` holds the knobs (see :class:`StreamingSettings`); they can be
    changed while the simulator runs. ``script`` is shared by all sessions.
    ``api_key`` opens ``/v3/ws`` and mints tokens; ``credential`` is the team credential
    the proxy path accepts (the token service simulator's default is the same).
    """

    def __init__(
        self,
        script: Iterable[str] = (),
        *,
        api_key: str = "sim-api-key",
        credential: str = "sim-team-token",
        host: str = "127.0.0.1",
        port: int = 0,
        reported_model: str | None = None,
        default_model: str = "universal-3-6-pro",
        eot_confidence: float = 0.6,
        max_rate: float | None = 1.25,
        rate_slack_seconds: float = 2.0,
        speech_threshold_dbfs: float = -40.0,
        max_session_seconds: float | None = None,
        inactivity_timeout_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.settings = StreamingSettings(
            reported_model=reported_model,
            default_model=default_model,
            eot_confidence=eot_confidence,
            max_rate=max_rate,
            rate_slack_seconds=rate_slack_seconds,
            speech_threshold_dbfs=speech_threshold_dbfs,
            max_session_seconds=max_session_seconds,
            inactivity_timeout_seconds=inactivity_timeout_seconds,
            seed=seed,
        )
        self.script = Script(script)
        self.tokens = TokenStore(api_key, clock)
        self.credential = credential
        self.clock = clock
        self.default_fault: FaultPlan | None = None
        self.sessions: list[SessionRecord] = []
        self.handshakes: list[HandshakeRecord] = []
        self.handshake_attempts = 0
        self.handshake_rejections = 0
        self.handshake_hangs = 0
        self._closing = asyncio.Event()
        self.minted_tokens: list[str] = []
        self._faults: deque[FaultPlan] = deque()
        self._upgrades: dict[ServerConnection, tuple[HandshakeRecord, FaultPlan | None]] = {}
        self._live: dict[int, SimSession] = {}  # record index -> running session
        self._notifier = Notifier()
        self._env = SessionEnv(self.settings, self.script, self.tokens, self._notifier, clock)
        self._server: Server | None = None
        self._port: int | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Start listening; ``port`` is known afterwards."""
        self._server = await serve(
            self._handle,
            self.host,
            self.requested_port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            server_header=SERVER_HEADER,
            open_timeout=None,  # a slow or hanging answer (a fault) is not cut by the server
            max_size=_WIRE_MAX_SIZE,
            close_timeout=2,
        )
        sockname = self._server.sockets[0].getsockname()
        self._port = int(sockname[1])
        log.info("simulator: AssemblyAI v3 streaming SIMULATOR listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection (1001; stalled ones are cut) and stop listening."""
        if self._server is None:
            return
        for ws in list(self._env.stalled):
            ws.transport.abort()
        self._closing.set()  # hanging handshakes end now
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        log.info("simulator: streaming SIMULATOR stopped")

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/v3/ws``."""
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def proxy_url(self) -> str:
        """``ws://HOST:PORT/v1/assemblyai/v3/ws`` (the KeyPool-compatible proxy path)."""
        return f"ws://{self.host}:{self.port}{PROXY_WS_PATH}"

    @property
    def http_url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        """``http://HOST:PORT/v3/token``."""
        return self.http_url + TOKEN_PATH

    # -- tokens and faults ---------------------------------------------------

    def mint_token(
        self, expires_in_seconds: int, max_session_duration_seconds: int | None = None
    ) -> str:
        """Mint a single-use ``sim-`` token; ``ValueError`` for out-of-range values."""
        token = self.tokens.mint(expires_in_seconds, max_session_duration_seconds)
        self.minted_tokens.append(token)
        return token

    def schedule_fault(self, plan: FaultPlan, count: int = 1) -> None:
        """Queue ``plan`` for the next ``count`` connections (FIFO after earlier plans)."""
        self._faults.extend([plan] * count)

    def clear_faults(self) -> None:
        """Drop every queued plan (the default plan stays)."""
        self._faults.clear()

    @property
    def pending_faults(self) -> list[FaultPlan]:
        """Plans not yet taken by a connection."""
        return list(self._faults)

    # -- synthetic turns (benchmarks) ------------------------------------------

    async def emit_final_turns(
        self,
        count: int,
        *,
        interval: float = 0.0,
        session: int | None = None,
        text: str = SYNTHETIC_TURN_TEXT,
    ) -> list[tuple[int, float]]:
        """Send ``count`` final turns on a live session (the newest one by default, or the
        session with record index ``session``), ``interval`` seconds apart.

        Returns ``(turn_order, time.monotonic() just before the completing final was
        sent)`` per turn; see :meth:`SimSession.emit_final_turns`. ``RuntimeError`` when no
        such session is live.
        """
        index = max(self._live, default=None) if session is None else session
        live = self._live.get(index) if index is not None else None
        if live is None:
            raise RuntimeError("no live session to emit turns on")
        return await live.emit_final_turns(count, interval=interval, text=text)

    # -- waiting -------------------------------------------------------------
    # Every wait fails with TimeoutError after ``wait_timeout`` seconds (a
    # safety net); wrap it in ``asyncio.timeout`` for a shorter limit.

    @property
    def wait_timeout(self) -> float:
        """Seconds after which a wait helper gives up."""
        return self._notifier.timeout

    @wait_timeout.setter
    def wait_timeout(self, seconds: float) -> None:
        self._notifier.timeout = seconds

    async def wait_until(self, predicate: Callable[[], bool], what: str = "condition") -> None:
        """Wait until ``predicate()`` holds (checked after every recorded change)."""
        await self._notifier.wait_until(predicate, what)

    async def wait_for_session(self, index: int = 0) -> SessionRecord:
        """The record of the ``index``-th accepted connection (0-based), once it exists."""
        await self.wait_until(lambda: len(self.sessions) > index, f"session #{index}")
        return self.sessions[index]

    async def wait_for_begin(self, index: int = 0) -> SessionRecord:
        """The ``index``-th session record, once its ``Begin`` was sent."""
        await self.wait_until(
            lambda: len(self.sessions) > index and self.sessions[index].begin is not None,
            f"Begin of session #{index}",
        )
        return self.sessions[index]

    async def wait_closed(self, session: SessionRecord) -> SessionRecord:
        """Wait until ``session`` is over; returns it."""
        await self.wait_until(lambda: session.closed, f"end of session #{session.index}")
        return session

    async def wait_for_final_turns(
        self, count: int, *, formatted: bool | None = None
    ) -> list[Message]:
        """Wait for ``count`` final turns over all sessions (optionally only
        formatted or only unformatted ones); returns them all."""
        await self.wait_until(
            lambda: len(self.final_turns(formatted)) >= count, f"{count} final turns"
        )
        return self.final_turns(formatted)

    def final_turns(self, formatted: bool | None = None) -> list[Message]:
        """Every final turn sent so far, in order, over all sessions."""
        return [
            turn
            for record in self.sessions
            for turn in record.final_turns
            if formatted is None or turn["turn_is_formatted"] == formatted
        ]

    # -- HTTP and WebSocket --------------------------------------------------

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path, params = split_target(request.path)
        if path == TOKEN_PATH:
            return self._token_endpoint(request, params)
        if path not in (WS_PATH, PROXY_WS_PATH):
            return json_response(404, {"error": f"Not found: {path}", "simulator": True})
        self.handshake_attempts += 1
        shake = HandshakeRecord(
            at=self.clock(),
            path=path,
            query=params,
            offered_subprotocols=_offered(request),
            proxy=path == PROXY_WS_PATH,
        )
        self.handshakes.append(shake)
        if shake.proxy:
            proof = proxy_auth(
                self.credential, request.headers.get("Authorization"), shake.offered_subprotocols
            )
            if proof is None:
                return self._refuse(shake, 401, "credential", {"error": KEYPOOL_ERRORS[401]})
            shake.auth = proof[0]
        plan = self._faults.popleft() if self._faults else self.default_fault
        if plan is not None and plan.kind == "handshake":
            status = plan.status or 500
            headers = dict(plan.headers)
            if status == 429:
                headers.setdefault("Retry-After", "1")
            body = plan.handshake_body(proxy=shake.proxy)
            return self._refuse(shake, status, "fault", body, headers)
        if plan is not None and plan.kind == "handshake_hang":
            self.handshake_hangs += 1
            shake.outcome = "hang"
            self._notifier.notify()
            log.info("simulator: not answering the upgrade request (scheduled fault)")
            await self._closing.wait()  # until the simulator stops
        else:
            shake.status = 101
        self._upgrades[ws] = (shake, plan)
        self._notifier.notify()
        return None

    def _refuse(
        self,
        shake: HandshakeRecord,
        status: int,
        outcome: HandshakeOutcome,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> Response:
        self.handshake_rejections += 1
        shake.status, shake.outcome = status, outcome
        self._notifier.notify()
        log.info("simulator: %s upgrade refused with HTTP %d (%s)", shake.path, status, outcome)
        return json_response(status, body, headers)

    def _select_subprotocol(
        self, ws: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        """The proxy's ``keypool-token.`` subprotocol when it carried the credential, else
        the first offered one (browsers fail the handshake unless one is echoed)."""
        upgrade = self._upgrades.get(ws)
        if upgrade is not None and upgrade[0].auth == "proxy_subprotocol":
            chosen = proxy_auth(self.credential, None, offered)
            if chosen is not None and chosen[1] is not None:
                return Subprotocol(chosen[1])
        return offered[0] if offered else None

    def _token_endpoint(self, request: Request, params: dict[str, str]) -> Response:
        key = request.headers.get("Authorization")
        if key is None or key.strip() != self.tokens.api_key:
            return json_response(401, {"error": "Invalid API key"})
        try:
            expires = int_param(params, "expires_in_seconds")
            if expires is None:
                raise ValueError("expires_in_seconds is required")
            token = self.mint_token(expires, int_param(params, "max_session_duration_seconds"))
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        self._notifier.notify()
        return json_response(200, {"token": token, "expires_in_seconds": expires})

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        path, query = split_target(request.path)
        shake, plan = self._upgrades.pop(ws)
        record = SessionRecord(
            index=len(self.sessions),
            query=query,
            headers={name.lower(): value for name, value in request.headers.raw_items()},
            connected_at=self.clock(),
            fault=plan,
            path=path,
            offered_subprotocols=list(shake.offered_subprotocols),
            subprotocol=ws.subprotocol,
            auth=shake.auth,
        )
        self.sessions.append(record)
        self._notifier.notify()
        session = self._live[record.index] = SimSession(ws, record, self._env)
        try:
            await session.run()
        finally:
            del self._live[record.index]


def _offered(request: Request) -> list[str]:
    """The subprotocols a client offers (``Sec-WebSocket-Protocol``, comma-separated)."""
    return [
        item.strip()
        for value in request.headers.get_all("Sec-WebSocket-Protocol")
        for item in value.split(",")
        if item.strip()
    ]


__all__ = ["PROXY_WS_PATH", "WS_PATH", "FaultPlan", "StreamingSettings", "StreamingSimulator"]
