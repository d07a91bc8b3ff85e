"""Reconnect gap: an abrupt server drop (TCP cut, 1006 at the client) to audio flowing in
the new session, as the simulator sees it.

Several daemons run side by side, each with its own simulator pair whose every session is
dropped `drop_after` seconds after `Begin`, so many drops fit in a short run. Their starts
are staggered so no two drops coincide. `drop_after` defaults to just past the
engine's stable-session threshold: a drop after a stable session is the everyday case
(a Wi-Fi blip); drops in quick succession are governed by the backoff policy instead.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from bench.contenders import edgecap_config, edgecap_process, sim_script
from bench.context import Bench, say
from bench.stack import ClientProcess
from bench.stats import Summary, summarize


def default_drop_after() -> float:
    """One second past the current engine's stable-session threshold (or 31 s)."""
    try:
        from edgecap.engine.policy import RetrySettings
    except ImportError:  # pragma: no cover - the module moved
        return 31.0
    return RetrySettings().stable_seconds + 1.0


@dataclass
class ReconnectResult:
    measured: bool = False
    reason: str = ""
    instances: int = 0
    drop_after_s: float = 0.0
    gaps_ms: list[float] = field(default_factory=list)
    gap: Summary | None = None
    prefetched: int = 0  # reconnects that used a token minted before the drop
    notes: list[str] = field(default_factory=list)


def gaps_from_sessions(sessions: list[dict[str, Any]], drops: int) -> list[float]:
    """Milliseconds from each dropped session's close to the next session's first audio."""
    return [gap for gap, _ in reconnects(sessions, drops)]


def reconnects(sessions: list[dict[str, Any]], drops: int) -> list[tuple[float, bool]]:
    """(gap in ms, token minted before the drop) for each drop among the first sessions."""
    found: list[tuple[float, bool]] = []
    for before, after in itertools.pairwise(sessions[: drops + 1]):
        closed = before["stamps"]["closed"]
        first = after["stamps"]["first_frame"]
        if before["close_code"] == 1006 and closed is not None and first is not None:
            gap_s = first - closed
            age = after.get("token_age_s")
            found.append((gap_s * 1000, age is not None and age > gap_s + 0.05))
    return found


async def run(
    bench: Bench, instances: int, drops_each: int, drop_after: float, stagger: float
) -> ReconnectResult:
    result = ReconnectResult(instances=instances, drop_after_s=drop_after)
    processes: list[tuple[str, ClientProcess]] = []
    try:
        for i in range(instances):
            name = f"rc{i}"
            urls = await bench.start_sim(name, sim_script(2))
            await bench.host.call("fault", name=name, spec=f"drop@wall={drop_after:g}s")
            source = bench.source(f"bench{name}")
            config = edgecap_config(
                bench.workdir / f"{name}.toml",
                device_id=f"bench-{name}",
                source=source,
                urls=urls,
                mqtt_port=bench.broker.port,
            )
            process = edgecap_process(name, config, source, urls, bench.log(name))
            await process.start(bench.changes)
            processes.append((name, process))
            if i + 1 < instances:
                await asyncio.sleep(stagger)  # spacing between the daemons' drops
        say(f"  {instances} daemons running; {drops_each} drop(s) each, {drop_after:g} s apart")
        limit = drops_each * (drop_after + 90) + 60
        waits = [
            bench.host.call("wait_streaming", timeout=limit, name=name, index=drops_each)
            for name, _ in processes
        ]
        outcomes = await asyncio.gather(*waits, return_exceptions=True)
        for (name, process), outcome in zip(processes, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                result.notes.append(f"{name}: no session #{drops_each}: {outcome}")
                result.notes.append(process.log_tail(5))
                continue
            sessions = await bench.sessions(name)
            for gap, prefetched in reconnects(sessions, drops_each):
                result.gaps_ms.append(gap)
                result.prefetched += prefetched
    finally:
        await asyncio.gather(*(p.stop() for _, p in processes))
    if result.gaps_ms:
        result.measured = True
        result.gap = summarize(result.gaps_ms)
    else:
        result.reason = "no reconnect completed: " + "; ".join(result.notes[:2])
    return result
