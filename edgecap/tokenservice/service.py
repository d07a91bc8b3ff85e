"""The token service's state on one replica: the store, the policy's windows, the open
proxy sessions, the provider client, metrics and the audit log. Routes (app.py) and the
proxy (proxy.py) ask it to admit a request and tell it what happened."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from edgecap.tokenservice.config import LoadedService
from edgecap.tokenservice.credentials import credential_hash
from edgecap.tokenservice.metrics import Metrics
from edgecap.tokenservice.policy import (
    UNAUTHORIZED,
    Limits,
    MinuteWindow,
    Refusal,
    Usage,
    budget_refusal,
    rate_refusal,
    session_refusal,
    utc_day,
)
from edgecap.tokenservice.store import Device, Store
from edgecap.tokenservice.upstream import Upstream

audit_log = logging.getLogger("edgecap.tokens.audit")
DRAINING = Refusal(503, "draining", "this replica is shutting down; retry (another replica)", 1)
DATABASE_UNAVAILABLE = Refusal(
    503, "database_unavailable", "the token service cannot reach its database; retry", 5
)
DATABASE_SECONDS = 5.0
"""A database call on the request path that takes longer fails the request (503)."""


def limits_of(loaded: LoadedService) -> Limits:
    device, fleet = loaded.config.limits.device, loaded.config.limits.fleet
    return Limits(
        device_per_minute=device.token_requests_per_minute,
        device_sessions=device.concurrent_sessions,
        device_daily_seconds=device.daily_billed_seconds,
        fleet_per_minute=fleet.token_requests_per_minute,
        fleet_sessions=fleet.concurrent_sessions,
        fleet_daily_seconds=fleet.daily_billed_seconds,
        max_session_seconds=device.max_session_seconds,
    )


@dataclass(frozen=True, slots=True)
class Admitted:
    device: Device
    usage: Usage
    day: int


@dataclass
class OpenSession:
    device: Device
    drain: Callable[[int, str], None]
    """Ask the session to end: Terminate upstream, then close the device's side."""


@dataclass
class Sessions:
    by_device: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    open: set[int] = field(default_factory=set)
    handles: dict[int, OpenSession] = field(default_factory=dict)


class TokenService:
    def __init__(
        self,
        loaded: LoadedService,
        store: Store,
        *,
        upstream: Upstream | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.store = store
        self.limits = limits_of(loaded)
        self.upstream = upstream or Upstream(loaded.config.upstream_timeout_seconds)
        self.metrics = Metrics()
        self.clock = clock
        self.wall = wall
        self.draining = False
        self._windows: dict[int, MinuteWindow] = defaultdict(MinuteWindow)
        self._fleet_window = MinuteWindow()
        self.sessions = Sessions()
        self._next_session = 0
        self.drained = asyncio.Event()

    # -- admission -------------------------------------------------------------------------

    async def admit(self, credential: str | None, route: str) -> Admitted | Refusal:
        """The device behind `credential` if policy lets this request through, else the
        refusal (audited and counted by the caller via `refuse`)."""
        if self.draining:
            return DRAINING
        if credential is None:
            return UNAUTHORIZED
        day = utc_day(self.wall())
        try:
            async with asyncio.timeout(DATABASE_SECONDS):
                device, usage = await asyncio.to_thread(
                    self.store.device_and_usage,
                    credential_hash(credential),
                    day,
                    fleet=bool(self.limits.fleet_daily_seconds),
                )
        except (SQLAlchemyError, TimeoutError) as exc:
            self.database_failed("admit", exc)
            return DATABASE_UNAVAILABLE
        if device is None:
            return UNAUTHORIZED
        if not device.enabled:
            return Refusal(403, "device_disabled", f"device {device.name} is denied by the admin")
        now = self.clock()
        window = self._windows[device.id]
        refusal = rate_refusal(self.limits, window, self._fleet_window, now)
        if refusal is not None:
            return refusal
        window.add(now)
        self._fleet_window.add(now)
        refusal = budget_refusal(self.limits, usage, self.wall())
        return refusal or Admitted(device, usage, day)

    # -- sessions --------------------------------------------------------------------------

    def reserve_session(self, handle: OpenSession) -> int | Refusal:
        """A slot for a proxied session (the key to `close_session`), or the refusal when
        the device or the fleet has as many open as the policy allows."""
        refusal = session_refusal(
            self.limits, self.sessions.by_device.get(handle.device.id, 0), len(self.sessions.open)
        )
        if refusal is not None:
            return refusal
        self._next_session += 1
        key = self._next_session
        self.sessions.open.add(key)
        self.sessions.handles[key] = handle
        self.sessions.by_device[handle.device.id] += 1
        self.metrics.sessions_open.set(len(self.sessions.open))
        return key

    def close_session(self, key: int) -> None:
        handle = self.sessions.handles.pop(key, None)
        self.sessions.open.discard(key)
        if handle is not None:
            self.sessions.by_device[handle.device.id] -= 1
            if self.sessions.by_device[handle.device.id] <= 0:
                del self.sessions.by_device[handle.device.id]
        self.metrics.sessions_open.set(len(self.sessions.open))
        if self.draining and not self.sessions.open:
            self.drained.set()

    async def drain(self, seconds: float) -> None:
        """Refuse new work, ask every open session to end (Terminate upstream), and wait
        for them for at most `seconds`."""
        self.draining = True
        if not self.sessions.open:
            self.drained.set()
        for handle in list(self.sessions.handles.values()):
            handle.drain(1012, "token service restarting; reconnect")
        try:
            await asyncio.wait_for(self.drained.wait(), seconds)
        except TimeoutError:
            entry = {"event": "drain_timeout", "sessions_open": len(self.sessions.open)}
            audit_log.warning("%s", json.dumps(entry), extra={"audit": entry})

    # -- accounting ------------------------------------------------------------------------

    async def record(
        self,
        admitted: Admitted,
        *,
        tokens: int = 0,
        requests: int = 1,
        metered: float = 0.0,
        estimated: float = 0.0,
    ) -> None:
        try:
            async with asyncio.timeout(DATABASE_SECONDS):
                await asyncio.to_thread(
                    self.store.record,
                    admitted.device.id,
                    admitted.day,
                    self.wall(),
                    tokens=tokens,
                    requests=requests,
                    metered=metered,
                    estimated=estimated,
                )
        except (SQLAlchemyError, TimeoutError) as exc:
            # What was minted is handed out all the same; only its accounting is lost.
            self.database_failed("record", exc, device=admitted.device.name, metered=metered)
        name = admitted.device.name
        if metered:
            self.metrics.billed_seconds.labels(name, "metered").inc(metered)
        if estimated:
            self.metrics.billed_seconds.labels(name, "estimated").inc(estimated)

    def database_failed(self, what: str, exc: BaseException, **extra: Any) -> None:
        entry = {"event": "database_error", "during": what, "error": type(exc).__name__}
        entry.update(extra)
        audit_log.error("%s", json.dumps(entry), extra={"audit": entry})

    def audit(self, route: str, outcome: str, status: int, **extra: Any) -> None:
        """One JSON line: route, device, outcome, status (never a credential, key or token)."""
        self.metrics.requests.labels(route, outcome).inc()
        entry = {"event": "request", "route": route, "outcome": outcome, "status": status}
        entry.update({k: v for k, v in extra.items() if v is not None})
        audit_log.info("%s", json.dumps(entry), extra={"audit": entry})
