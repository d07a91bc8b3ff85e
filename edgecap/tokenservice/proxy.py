"""The KeyPool-compatible WebSocket proxy: `/v1/assemblyai/v3/ws?...` with the device
credential (Bearer header, or the subprotocol `keypool-token.<credential>`, echoed), relayed
to AssemblyAI's `/v3/ws` with the API key as raw `Authorization` (websockets client).

The proxy knows when each upstream session opened and closed, so it meters billed seconds
exactly. It ends a session (Terminate upstream, then a close with a reason) when the device
or the fleet runs out of budget, when the device is revoked or denied, and on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from sqlalchemy.exc import SQLAlchemyError
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from edgecap.tokenservice.credentials import from_upgrade
from edgecap.tokenservice.policy import Refusal, Usage, session_allowance
from edgecap.tokenservice.responses import refusal_response
from edgecap.tokenservice.service import (
    DATABASE_SECONDS,
    Admitted,
    OpenSession,
    TokenService,
)

ROUTE = "assemblyai_ws"
TERMINATE_WAIT_SECONDS = 5.0
CREDENTIAL_PARAMS = frozenset({"token", "api_key", "apikey", "key", "authorization"})
log = logging.getLogger("edgecap.tokens")


@dataclass
class Ending:
    code: int
    reason: str
    outcome: str


async def proxy_endpoint(websocket: WebSocket) -> None:
    service: TokenService = websocket.app.state.service
    offered = list(websocket.scope.get("subprotocols") or [])
    credential, echo = from_upgrade(websocket.headers.get("authorization"), offered)
    if not service.config.assemblyai.enabled:
        result: Admitted | Refusal = Refusal(404, "provider_disabled", "AssemblyAI is off")
    else:
        result = await service.admit(credential, ROUTE)
    if isinstance(result, Refusal):
        service.audit(ROUTE, result.code, result.status)
        await websocket.send_denial_response(refusal_response(result))
        return
    # The session's slot is taken before the first await, so that connects arriving together
    # cannot all pass the concurrent-session limit.
    handle = OpenSession(result.device, lambda code, why: None)
    reserved = service.reserve_session(handle)
    if isinstance(reserved, Refusal):
        service.audit(ROUTE, reserved.code, reserved.status, device=result.device.name)
        await websocket.send_denial_response(refusal_response(reserved))
        return
    try:
        upstream, refusal = await _open_upstream(service, websocket)
        if upstream is None:
            assert refusal is not None
            service.audit(ROUTE, refusal.code, refusal.status, device=result.device.name)
            await websocket.send_denial_response(refusal_response(refusal))
            return
        await websocket.accept(subprotocol=echo)
        session = ProxySession(
            service, result, websocket, upstream, release=lambda: service.close_session(reserved)
        )
        handle.drain = lambda code, why: session.request_end(code, why, "drained")
        if service.draining:  # the drain began while the upstream was opening
            session.request_end(1012, "token service restarting; reconnect", "drained")
        await session.run()
    finally:
        service.close_session(reserved)  # (again after `release`: once is what counts)


def upstream_url(base: str, query: bytes) -> str:
    """The provider's URL with the device's query (minus anything carrying a credential)."""
    pairs = [
        (k, v)
        for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        if k.lower() not in CREDENTIAL_PARAMS
    ]
    return base + ("?" + urlencode(pairs) if pairs else "")


async def _open_upstream(
    service: TokenService, websocket: WebSocket
) -> tuple[ClientConnection | None, Refusal | None]:
    url = upstream_url(service.config.assemblyai.streaming_url, websocket.scope["query_string"])
    started = time.monotonic()
    try:
        upstream = await connect(
            url,
            additional_headers={"Authorization": service.loaded.assemblyai_key or ""},
            open_timeout=service.config.upstream_timeout_seconds,
            max_size=2**20,
            compression=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status == 429:
            refusal = Refusal(429, "upstream_rate_limited", "AssemblyAI is rate limiting", 5)
        elif status in (401, 403):
            refusal = Refusal(
                502, "upstream_refused_key", f"AssemblyAI refused the service's key ({status})"
            )
        else:
            refusal = Refusal(502, "upstream_error", f"AssemblyAI refused the session ({status})")
        return None, refusal
    except TimeoutError:
        return None, Refusal(504, "upstream_timeout", "AssemblyAI did not answer in time", 2)
    except (OSError, WebSocketException) as exc:
        name = type(exc).__name__
        return None, Refusal(502, "upstream_unreachable", f"cannot reach AssemblyAI ({name})", 2)
    finally:
        service.metrics.upstream_latency.labels(ROUTE).observe(time.monotonic() - started)
    return upstream, None


class ProxySession:
    def __init__(
        self,
        service: TokenService,
        admitted: Admitted,
        websocket: WebSocket,
        upstream: ClientConnection,
        release: Callable[[], None] = lambda: None,
    ) -> None:
        self.service = service
        self._release = release  # frees the session's slot (the concurrent-session limit)
        self.admitted = admitted
        self.websocket = websocket
        self.upstream = upstream
        self.opened = service.clock()
        self.flushed = self.opened
        self.ending: Ending | None = None
        self._end = asyncio.Event()

    def request_end(self, code: int, reason: str, outcome: str = "ended") -> None:
        if self.ending is None:
            self.ending = Ending(code, reason, outcome)
            self._end.set()

    async def run(self) -> None:
        service = self.service
        name = self.admitted.device.name
        service.audit(ROUTE, "open", 101, device=name)
        tasks = [
            asyncio.create_task(self._device_to_upstream()),
            asyncio.create_task(self._upstream_to_device(), name="up"),
            asyncio.create_task(self._watch()),
        ]
        try:
            _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if self.ending is not None:
                await self._terminate(pending)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.upstream.close()
            # usage written and the slot freed before the device hears the close: a device
            # that reconnects at once is refused for the right reason (its budget), not for
            # a session that is already over
            seconds = await self._flush()
            self._release()
            await self._close_device()
            ending = self.ending
            service.audit(
                ROUTE,
                ending.outcome if ending else "closed",
                ending.code if ending else 1000,
                device=name,
                billed_seconds=round(seconds, 3),
                reason=ending.reason if ending else None,
            )

    async def _terminate(self, pending: set[asyncio.Task[None]]) -> None:
        """Ask the provider to end the session; relay its last messages (Termination)
        until it closes, for a few seconds at most."""
        with contextlib.suppress(ConnectionClosed):
            await self.upstream.send(json.dumps({"type": "Terminate"}))
        relay = [t for t in pending if t.get_name() == "up"]
        if relay:
            await asyncio.wait(relay, timeout=TERMINATE_WAIT_SECONDS)

    async def _device_to_upstream(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            text = message.get("text")
            try:
                if data is not None:
                    await self.upstream.send(data)
                elif text is not None:
                    await self.upstream.send(text)
            except ConnectionClosed:
                return

    async def _upstream_to_device(self) -> None:
        try:
            async for message in self.upstream:
                if isinstance(message, bytes):
                    await self.websocket.send_bytes(message)
                else:
                    await self.websocket.send_text(message)
        except ConnectionClosed:
            pass
        except (WebSocketDisconnect, RuntimeError):
            return

    async def _watch(self) -> None:
        """End the session when it would break a budget, or when the device is revoked or
        denied; write its usage every `session_check_seconds` so other replicas see it."""
        service = self.service
        every = service.config.session_check_seconds
        allowance = session_allowance(service.limits, self.admitted.usage)
        deadline = self.opened + allowance
        while True:
            wait = min(every, max(0.0, deadline - service.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._end.wait(), wait)
                return
            if service.clock() >= deadline:
                self.request_end(1008, "daily billed-time budget exhausted", "budget_exhausted")
                return
            await self._flush()
            checked = await self._recheck()
            if checked is None:  # the database did not answer: keep the last deadline
                continue
            active, usage = checked
            if not active:
                self.request_end(1008, "device credential revoked or denied", "revoked")
                return
            deadline = service.clock() + session_allowance(service.limits, usage)

    async def _recheck(self) -> tuple[bool, Usage] | None:
        """Whether the device may still stream, and its usage today; None if the database
        failed (logged)."""
        store, device = self.service.store, self.admitted.device
        fleet = bool(self.service.limits.fleet_daily_seconds)
        try:
            async with asyncio.timeout(DATABASE_SECONDS):
                active = await asyncio.to_thread(store.is_active, device.id)
                usage = await asyncio.to_thread(
                    store.usage, device.id, self.admitted.day, fleet=fleet
                )
        except (SQLAlchemyError, TimeoutError) as exc:
            self.service.database_failed("session check", exc, device=device.name)
            return None
        return active, usage

    async def _flush(self) -> float:
        """Record the seconds since the last flush; returns the session's total."""
        now = self.service.clock()
        delta, self.flushed = now - self.flushed, now
        if delta > 0:
            await self.service.record(self.admitted, requests=0, metered=delta)
        return now - self.opened

    async def _close_device(self) -> None:
        ending = self.ending
        code, reason = (ending.code, ending.reason) if ending else (1000, "")
        if ending is None and self.upstream.close_code is not None:
            code = self.upstream.close_code
            reason = self.upstream.close_reason or ""
            if code in (1005, 1006):
                code, reason = 1011, "upstream connection lost"
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await self.websocket.close(code, reason[:120])
