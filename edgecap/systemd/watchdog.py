"""When the daemon may tell systemd it is alive (no I/O).

`WATCHDOG=1` must mean "audio is being handled". The capture side is alive when frames keep
arriving, or when capture has reported the device unavailable (missing, busy, an open that
hangs, a stall it is restarting) and its own next step is not overdue: a reported state is
handled by the daemon (it restarts the capture process), and restarting the whole service
would not do more. It is stalled when no frame came and nothing was reported for longer
than `stall_seconds` (longer than capture's own stall time: capture did not handle it), or
when capture's next step is overdue. The event loop's responsiveness is implied: the ping
is sent from the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger("edgecap")


def watchdog_interval(environ: Mapping[str, str] | None, pid: int) -> float | None:
    """Seconds between pings (half of WATCHDOG_USEC), or None when no watchdog is armed."""
    env = environ or {}
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner.isdigit() and int(owner) != pid:
        return None
    return int(usec) / 1_000_000 / 2


@dataclass
class CaptureLiveness:
    stall_seconds: float
    grace_seconds: float = 2.0
    last_frame_at: float | None = None
    retry_due_at: float | None = None  # set while capture reports the device unavailable
    started_at: float = 0.0

    def frame(self, now: float) -> None:
        self.last_frame_at = now
        self.retry_due_at = None

    def unavailable(self, now: float, retry_in: float | None) -> None:
        self.retry_due_at = now + (retry_in or 0.0)

    def reason_to_withhold(self, now: float) -> str | None:
        """None when a ping is honest, else why not."""
        if self.retry_due_at is not None:
            if now <= self.retry_due_at + self.grace_seconds + self.stall_seconds:
                return None
            return "capture missed its own next step (a report, restart or new attempt)"
        last = self.last_frame_at if self.last_frame_at is not None else self.started_at
        if now - last <= self.stall_seconds:
            return None
        return f"no audio frame for {now - last:.1f} s: capture is stalled"


async def watchdog_loop(
    interval: float | None, liveness: Callable[[], CaptureLiveness], ping: Callable[[], None]
) -> None:
    """WATCHDOG=1 (`ping`) every `interval` (half systemd's), only while audio is being
    handled (`liveness()`: the daemon's current one, replaced when capture restarts)."""
    if interval is None:
        return
    withheld: str | None = None
    while True:
        await asyncio.sleep(interval)  # the ping period itself
        reason = liveness().reason_to_withhold(time.monotonic())
        if reason is None:
            if withheld:
                log.info("audio flows again; watchdog pings resumed")
            withheld = None
            ping()
        elif reason != withheld:
            withheld = reason
            log.error("withholding the watchdog ping: %s", reason, extra={"ERROR_CLASS": "stall"})
