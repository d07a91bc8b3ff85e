"""A local SIMULATOR of OpenAI's GA Realtime transcription API (not OpenAI).

It recognises nothing: each detected stretch of speech becomes the next line of a script,
and it says so (``Server: edgecap-simulator``, ``ek_sim_`` secrets, ``"simulator": true``
in session objects, ``simulator:`` log lines). Endpoints, on one port:

* ``GET /v1/realtime?intent=transcription`` (WebSocket) with ``Authorization: Bearer
  <api key | ek_ secret>``; 401 without a valid one; a realtime model in ``model=`` makes a
  conversation session (transcription updates refused), a transcription model there is
  the real server's ``invalid_model`` error at connect;
* ``POST /v1/realtime/client_secrets`` (Bearer API key) mints reusable ``ek_`` secrets;
* ``POST /v1/openai/v1/realtime/client_secrets`` is the same behind a KeyPool-style token
  service (Bearer team credential): the device's token service base URL is
  ``{http_url}/v1/openai``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from edgecap.sim.http import SERVER_HEADER, LoopbackServer, json_response, split_target
from edgecap.sim.openai.config import TranscriptionConfig
from edgecap.sim.openai.faults import RealtimeFault
from edgecap.sim.openai.http import (
    PostAwareConnection,
    SecretsEndpoint,
    SecretsMode,
    openai_error,
)
from edgecap.sim.openai.protocol import (
    BETA_REFUSED_TEXT,
    KEYPOOL_BASE_PATH,
    KEYPOOL_SECRETS_PATH,
    MISSING_MODEL_TEXT,
    REALTIME_PATH,
    SECRETS_PATH,
    TRANSCRIPTION_MODELS,
    RealtimeError,
    transcription_model_as_session_model,
)
from edgecap.sim.openai.records import (
    ItemRecord,
    RealtimeHandshake,
    RealtimeSessionRecord,
    SecretRequestRecord,
)
from edgecap.sim.openai.secrets import (
    AuthFailure,
    EphemeralSecret,
    SecretStore,
    parse_secret_request,
)
from edgecap.sim.openai.session import RealtimeSession
from edgecap.sim.openai.settings import DEFAULT_MAX_SESSION_SECONDS, RealtimeEnv, RealtimeSettings
from edgecap.sim.records import Notifier
from edgecap.sim.turns import Script

log = logging.getLogger("edgecap.sim")

_WIRE_MAX_SIZE = 16 * 1024 * 1024  # appends may carry up to 15 MiB


class OpenAIRealtimeSimulator(LoopbackServer):
    """The OpenAI Realtime transcription simulator; use with ``async with`` or start/stop.

    ``api_key`` opens the WebSocket and mints secrets; ``credential`` is the team
    credential of the KeyPool-style secrets path. ``script`` is shared by all sessions.
    """

    _kind = "OpenAI Realtime simulator"

    def __init__(
        self,
        script: Iterable[str] = (),
        *,
        api_key: str = "sim-api-key",
        credential: str = "sim-team-token",
        host: str = "127.0.0.1",
        port: int = 0,
        max_session_seconds: float = DEFAULT_MAX_SESSION_SECONDS,
        speech_threshold_dbfs: float = -40.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.settings = RealtimeSettings(
            max_session_seconds=max_session_seconds, speech_threshold_dbfs=speech_threshold_dbfs
        )
        self.script = Script(script)
        self.clock = clock
        self.secrets = SecretStore(api_key, clock)
        self.default_fault: RealtimeFault | None = None
        self.sessions: list[RealtimeSessionRecord] = []
        self.handshakes: list[RealtimeHandshake] = []
        self._closing = asyncio.Event()
        self._notifier = Notifier()
        self._endpoint = SecretsEndpoint(
            self.secrets, credential, self._notifier, self._closing, clock
        )
        self._env = RealtimeEnv(self.settings, self.script, self._notifier, clock)
        self._faults: deque[RealtimeFault] = deque()
        self._upgrades: dict[ServerConnection, tuple[RealtimeHandshake, RealtimeFault | None]] = {}
        self._server: Server | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening; ``port`` is known afterwards."""
        self._server = await serve(
            self._handle,
            self.host,
            self.requested_port,
            process_request=self._process_request,
            server_header=SERVER_HEADER,
            open_timeout=None,  # a hanging answer (a fault) is not cut by the server
            max_size=_WIRE_MAX_SIZE,
            close_timeout=2,
            create_connection=PostAwareConnection,
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("simulator: OpenAI Realtime transcription SIMULATOR listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection and stop listening (hanging answers end)."""
        if self._server is None:
            return
        for ws in list(self._env.stalled):
            ws.transport.abort()
        self._closing.set()
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        log.info("simulator: OpenAI Realtime SIMULATOR stopped")

    # -- URLs ------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/v1/realtime?intent=transcription`` (what a client connects to)."""
        return f"{self.realtime_url}?intent=transcription"

    @property
    def realtime_url(self) -> str:
        """``ws://HOST:PORT/v1/realtime`` (no query)."""
        return f"ws://{self.host}:{self.port}{REALTIME_PATH}"

    @property
    def api_base_url(self) -> str:
        """``http://HOST:PORT/v1`` (stands for ``https://api.openai.com/v1``)."""
        return f"{self.http_url}/v1"

    @property
    def client_secrets_url(self) -> str:
        """``http://HOST:PORT/v1/realtime/client_secrets`` (Bearer API key)."""
        return self.http_url + SECRETS_PATH

    @property
    def token_service_url(self) -> str:
        """``http://HOST:PORT/v1/openai``: the KeyPool-style token service base URL."""
        return self.http_url + KEYPOOL_BASE_PATH

    @property
    def keypool_client_secrets_url(self) -> str:
        """``http://HOST:PORT/v1/openai/v1/realtime/client_secrets`` (Bearer credential)."""
        return self.http_url + KEYPOOL_SECRETS_PATH

    # -- secrets and faults ----------------------------------------------------------

    @property
    def api_key(self) -> str:
        return self.secrets.api_key

    @property
    def credential(self) -> str:
        return self._endpoint.credential

    @property
    def secrets_mode(self) -> SecretsMode:
        """How the secrets endpoints answer: ``ok``, ``401``, ``403``, ``429`` (with
        ``Retry-After``), ``500``, ``502``, ``503``, ``hang`` (until the simulator stops)
        or ``slow`` (``ok`` after ``secrets_slow_seconds``)."""
        return self._endpoint.mode

    @secrets_mode.setter
    def secrets_mode(self, mode: SecretsMode) -> None:
        self._endpoint.mode = mode

    @property
    def secrets_slow_seconds(self) -> float:
        return self._endpoint.slow_delay_seconds

    @secrets_slow_seconds.setter
    def secrets_slow_seconds(self, seconds: float) -> None:
        self._endpoint.slow_delay_seconds = seconds

    @property
    def secret_requests(self) -> list[SecretRequestRecord]:
        """Every answered ``client_secrets`` request (both paths), in order."""
        return self._endpoint.requests

    @property
    def minted_secrets(self) -> list[EphemeralSecret]:
        """Every secret minted (over HTTP or :meth:`mint_secret`), with its uses."""
        return self.secrets.minted

    def mint_secret(self, seconds: int = 600, session: dict[str, object] | None = None) -> str:
        """Mint an ``ek_`` secret directly (``session``: a transcription session config, as
        in the HTTP body); ``RealtimeError`` for invalid values."""
        body: dict[str, object] = {"expires_after": {"anchor": "created_at", "seconds": seconds}}
        if session is not None:
            body["session"] = session
        return self.secrets.mint(parse_secret_request(json.dumps(body).encode())).value

    def schedule_fault(self, plan: RealtimeFault, count: int = 1) -> None:
        """Queue ``plan`` for the next ``count`` authenticated upgrades."""
        self._faults.extend([plan] * count)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def pending_faults(self) -> list[RealtimeFault]:
        return list(self._faults)

    # -- waiting (TimeoutError after wait_timeout seconds) ---------------------------

    @property
    def wait_timeout(self) -> float:
        return self._notifier.timeout

    @wait_timeout.setter
    def wait_timeout(self, seconds: float) -> None:
        self._notifier.timeout = seconds

    async def wait_until(self, predicate: Callable[[], bool], what: str = "condition") -> None:
        """Wait until ``predicate()`` holds (checked after every recorded change)."""
        await self._notifier.wait_until(predicate, what)

    async def wait_for_session(self, index: int = 0) -> RealtimeSessionRecord:
        await self.wait_until(lambda: len(self.sessions) > index, f"session #{index}")
        return self.sessions[index]

    async def wait_for_created(self, index: int = 0) -> RealtimeSessionRecord:
        """The ``index``-th session once ``session.created`` was sent."""
        await self.wait_until(
            lambda: len(self.sessions) > index and self.sessions[index].created is not None,
            f"session.created of session #{index}",
        )
        return self.sessions[index]

    async def wait_for_updated(self, index: int = 0, count: int = 1) -> RealtimeSessionRecord:
        """The ``index``-th session once ``count`` ``session.updated`` were sent."""
        await self.wait_until(
            lambda: len(self.sessions) > index and len(self.sessions[index].updated) >= count,
            f"session.updated of session #{index}",
        )
        return self.sessions[index]

    async def wait_closed(self, session: RealtimeSessionRecord) -> RealtimeSessionRecord:
        await self.wait_until(lambda: session.closed, f"end of session #{session.index}")
        return session

    async def wait_for_items(self, count: int) -> list[ItemRecord]:
        """Wait for ``count`` completed items over all sessions; returns them all."""
        await self.wait_until(lambda: len(self.completed_items()) >= count, f"{count} items")
        return self.completed_items()

    def completed_items(self) -> list[ItemRecord]:
        """Every completed item, in order, over all sessions."""
        return [item for record in self.sessions for item in record.completed]

    async def wait_for_secret_requests(self, count: int) -> list[SecretRequestRecord]:
        await self.wait_until(
            lambda: len(self.secret_requests) >= count, f"{count} secret requests"
        )
        return list(self.secret_requests)

    async def wait_for_secret_requests_started(self, count: int) -> None:
        """Wait until ``count`` secret requests arrived, answered or not (``hang``)."""
        await self.wait_until(lambda: self._endpoint.started >= count, f"{count} requests started")

    # -- HTTP and WebSocket ------------------------------------------------------------

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path, query = split_target(request.path)
        method = ws.http_method if isinstance(ws, PostAwareConnection) else "GET"
        if path in (SECRETS_PATH, KEYPOOL_SECRETS_PATH):
            body = ws.http_body if isinstance(ws, PostAwareConnection) else b""
            return await self._endpoint.answer(
                path, method, request.headers.get("Authorization"), body
            )
        if path != REALTIME_PATH:
            return openai_error(404, RealtimeError(f"Invalid URL ({method} {path})"))
        if method != "GET":
            return openai_error(405, RealtimeError(f"Invalid method for {path}."))
        shake = RealtimeHandshake(at=self.clock(), query=query)
        self.handshakes.append(shake)
        try:
            shake.auth, secret = self.secrets.authenticate(request.headers.get("Authorization"))
        except AuthFailure as failure:
            shake.status, shake.outcome = 401, "unauthorized"
            self._notifier.notify()
            return openai_error(401, failure.error)
        shake.secret = secret.value if secret is not None else None
        plan = self._faults.popleft() if self._faults else self.default_fault
        if plan is not None and plan.kind == "handshake":
            shake.status, shake.outcome = plan.status or 500, "fault"
            self._notifier.notify()
            headers = {"Retry-After": "1"} if shake.status == 429 else None
            return json_response(shake.status, plan.handshake_body(), headers)
        if plan is not None and plan.kind == "handshake_hang":
            shake.outcome = "hang"
            self._notifier.notify()
            await self._closing.wait()
            return json_response(503, {"error": "simulator stopped"})
        shake.status = 101
        self._upgrades[ws] = (shake, plan)
        self._notifier.notify()
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        shake, plan = self._upgrades.pop(ws)
        secret = self.secrets.get(shake.secret) if shake.secret is not None else None
        record = RealtimeSessionRecord(
            index=len(self.sessions),
            query=shake.query,
            headers={name.lower(): value for name, value in request.headers.raw_items()},
            connected_at=self.clock(),
            auth=shake.auth,
            secret=shake.secret,
            fault=plan,
        )
        refusal = _classify(record, secret)
        if secret is not None:
            secret.uses.append(record.index)
        self.sessions.append(record)
        self._notifier.notify()
        await RealtimeSession(ws, record, self._env, refusal).run()


def _classify(
    record: RealtimeSessionRecord, secret: EphemeralSecret | None
) -> RealtimeError | None:
    """Set the session's kind and starting configuration; the error refusing it, if any."""
    query = record.query
    if "openai-beta" in record.headers:
        record.kind = "refused"
        return RealtimeError(BETA_REFUSED_TEXT, code="beta_api_shape_disabled")
    model = query.get("model")
    if model:
        record.url_model = model
        if model in TRANSCRIPTION_MODELS:
            record.kind = "refused"
            return transcription_model_as_session_model(model)
        record.kind = "conversation"
        return None
    minted_for = secret.session_type if secret is not None else None
    if minted_for == "realtime":
        record.kind = "conversation"
        record.url_model = str(secret.session.get("model", "")) if secret else ""
        return None
    if query.get("intent") != "transcription" and minted_for != "transcription":
        record.kind = "refused"
        return RealtimeError(MISSING_MODEL_TEXT, code="missing_model", param="model")
    record.kind = "transcription"
    preset = secret.config if secret is not None else None
    record.config = preset if preset is not None else TranscriptionConfig()
    return None


__all__ = ["OpenAIRealtimeSimulator"]
