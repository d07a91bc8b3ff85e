"""Catch-up after an outage: how long until the stream is live again (backlog <= 100 ms).

The measurement is `scripts/measure_reconnect.py`'s (the resilient-streaming issue's): the
daemon's own engine, session, buffer, pacer and token client against the simulators,
a drop followed by every connect refused (HTTP 503) for the outage, under a real-time check
stricter than the simulator's default (1.21x + 0.3 s) that must never fire. The backlog
drains at `catchup_rate` - 1 (0.2 s of audio per second at the default 1.2x).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from types import ModuleType

from bench.stack import REPO


@dataclass
class CatchUpRow:
    outage_s: float
    backlog_s: float  # buffered when the service came back
    live_after_back_s: float
    live_after_drop_s: float


@dataclass
class CatchUpResult:
    rows: list[CatchUpRow] = field(default_factory=list)
    reason: str = ""


def _measure_module() -> ModuleType:
    path = REPO / "scripts" / "measure_reconnect.py"
    spec = importlib.util.spec_from_file_location("edgecap_measure_reconnect", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def run(outages: tuple[float, ...]) -> CatchUpResult:
    measure = _measure_module()
    result = CatchUpResult()
    for outage in outages:
        after_back, after_drop, backlog = await measure.catch_up(outage)
        result.rows.append(CatchUpRow(outage, backlog, after_back, after_drop))
    return result


def section(r: CatchUpResult | None) -> str:
    if r is None:
        return "Not run."
    if not r.rows:
        return f"Not measured: {r.reason}"
    lines = [
        "| outage | backlog when the service returned | live again after it returned | "
        "after the drop |",
        "|---|---|---|---|",
    ]
    for row in r.rows:
        lines.append(
            f"| {row.outage_s:g} s | {row.backlog_s:.1f} s | {row.live_after_back_s:.1f} s | "
            f"{row.live_after_drop_s:.1f} s |"
        )
    return "\n".join(lines)
