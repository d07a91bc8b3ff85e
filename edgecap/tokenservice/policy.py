"""Admission decisions (pure, an injected clock): may this request or session go upstream?

Every refusal is a `Refusal` with an HTTP status, a machine-readable `code` and one line a
person can act on; nothing refused ever reaches the provider. Inputs are plain numbers: the
device's row, today's usage from the store, and the replica's own windows and open sessions.

Which limits are shared between replicas: devices, revocation and the daily usage live in
the database (every replica sees them at once); the per-minute windows and the open-session
counts are each replica's own (a load balancer with N replicas lets a device through up to
N times the per-minute limit; sessions are counted per replica).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

RefusalCode = Literal[
    "unauthorized",
    "device_disabled",
    "rate_limited",
    "fleet_rate_limited",
    "too_many_sessions",
    "fleet_too_many_sessions",
    "budget_exhausted",
    "fleet_budget_exhausted",
    "provider_disabled",
    "bad_request",
    "draining",
    "database_unavailable",
    "upstream_refused_key",
    "upstream_error",
    "upstream_unreachable",
    "upstream_timeout",
    "upstream_rate_limited",
]
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    code: RefusalCode
    message: str
    retry_after: int | None = None

    def body(self) -> dict[str, str]:
        return {"error": self.message, "code": self.code}


UNAUTHORIZED = Refusal(401, "unauthorized", "missing, unknown or revoked device credential")


@dataclass(frozen=True, slots=True)
class Limits:
    """0 = no limit."""

    device_per_minute: int = 30
    device_sessions: int = 2
    device_daily_seconds: int = 86_400
    fleet_per_minute: int = 0
    fleet_sessions: int = 0
    fleet_daily_seconds: int = 0
    max_session_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class Usage:
    """Billed seconds today: the device's and the fleet's (metered + estimated)."""

    device_seconds: float = 0.0
    fleet_seconds: float = 0.0


class MinuteWindow:
    """Requests in the last 60 s (a sliding log, bounded by the limit)."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] <= now - 60.0:
            self._times.popleft()

    def retry_after(self, now: float, limit: int) -> int | None:
        """None if one more request fits; else the whole seconds until one does."""
        if limit <= 0:
            return None
        self._trim(now)
        if len(self._times) < limit:
            return None
        return max(1, math.ceil(self._times[-limit] + 60.0 - now))

    def add(self, now: float) -> None:
        self._times.append(now)

    def __len__(self) -> int:
        return len(self._times)


def seconds_to_midnight(wall: float) -> int:
    """Whole seconds until the next UTC day (when daily budgets start again)."""
    return max(1, math.ceil(SECONDS_PER_DAY - wall % SECONDS_PER_DAY))


def utc_day(wall: float) -> int:
    """Days since the epoch, UTC: the key of a day's usage."""
    return int(wall // SECONDS_PER_DAY)


def budget_refusal(limits: Limits, usage: Usage, wall: float) -> Refusal | None:
    retry = seconds_to_midnight(wall)
    if limits.device_daily_seconds and usage.device_seconds >= limits.device_daily_seconds:
        return Refusal(
            429,
            "budget_exhausted",
            f"this device's daily billed-time budget ({limits.device_daily_seconds} s) is "
            "used up; it starts again at 00:00 UTC",
            retry,
        )
    if limits.fleet_daily_seconds and usage.fleet_seconds >= limits.fleet_daily_seconds:
        return Refusal(
            429,
            "fleet_budget_exhausted",
            f"the fleet's daily billed-time budget ({limits.fleet_daily_seconds} s) is used up; "
            "it starts again at 00:00 UTC",
            retry,
        )
    return None


def rate_refusal(
    limits: Limits, device: MinuteWindow, fleet: MinuteWindow, now: float
) -> Refusal | None:
    """A 429 when the device or the fleet is over its per-minute limit (nothing recorded)."""
    wait = device.retry_after(now, limits.device_per_minute)
    if wait is not None:
        return Refusal(
            429,
            "rate_limited",
            f"more than {limits.device_per_minute} requests a minute from this device",
            wait,
        )
    wait = fleet.retry_after(now, limits.fleet_per_minute)
    if wait is not None:
        return Refusal(
            429,
            "fleet_rate_limited",
            f"more than {limits.fleet_per_minute} requests a minute from the fleet",
            wait,
        )
    return None


def session_refusal(limits: Limits, device_open: int, fleet_open: int) -> Refusal | None:
    if limits.device_sessions and device_open >= limits.device_sessions:
        return Refusal(
            429,
            "too_many_sessions",
            f"this device already has {device_open} session(s) open "
            f"(limit {limits.device_sessions})",
            5,
        )
    if limits.fleet_sessions and fleet_open >= limits.fleet_sessions:
        return Refusal(
            429,
            "fleet_too_many_sessions",
            f"the fleet has {fleet_open} session(s) open (limit {limits.fleet_sessions})",
            5,
        )
    return None


def capped_session_seconds(requested: int | None, limits: Limits, usage: Usage) -> int:
    """max_session_duration_seconds for a token: what the device asked for (or the policy's
    maximum), capped by the policy and by what is left of the device's budget today, but not
    under AssemblyAI's minimum of 60 s."""
    cap = limits.max_session_seconds
    if limits.device_daily_seconds:
        cap = min(cap, int(limits.device_daily_seconds - usage.device_seconds))
    wanted = cap if requested is None else min(requested, cap)
    return max(60, wanted)


def session_allowance(limits: Limits, usage: Usage) -> float:
    """Seconds a proxied session may run from now before it breaks a budget (inf: none)."""
    left = math.inf
    if limits.device_daily_seconds:
        left = min(left, limits.device_daily_seconds - usage.device_seconds)
    if limits.fleet_daily_seconds:
        left = min(left, limits.fleet_daily_seconds - usage.fleet_seconds)
    return max(0.0, left)
