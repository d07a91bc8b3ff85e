"""Statistics and /proc parsing for the benchmark (no I/O, unit-tested).

Percentiles interpolate linearly between closest ranks (the "inclusive" method of
`statistics.quantiles`, numpy's default), so p50 of [1, 2, 3, 4] is 2.5.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100) of `values`, linearly interpolated."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Summary:
    """Distribution of a sample: count, p50/p95/p99, min, max, mean."""

    count: int
    p50: float
    p95: float
    p99: float
    minimum: float
    maximum: float
    mean: float


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("summary of no values")
    return Summary(
        count=len(values),
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        minimum=min(values),
        maximum=max(values),
        mean=statistics.fmean(values),
    )


def ratio(value: float | None, reference: float | None) -> float | None:
    """`value / reference`, or None when either is missing or the reference is not > 0."""
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


def growth(baseline: float, final: float) -> float:
    """Relative growth from `baseline` to `final` (0.05 = +5 %)."""
    if baseline <= 0:
        raise ValueError("growth needs a positive baseline")
    return (final - baseline) / baseline


def per_audio_minute(cpu_seconds: float, audio_seconds: float) -> float:
    """CPU seconds spent per minute of audio streamed."""
    if audio_seconds <= 0:
        raise ValueError("no audio streamed")
    return cpu_seconds * 60.0 / audio_seconds


# -- /proc -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """User and system CPU time of a process (all its threads), in clock ticks."""

    utime: int
    stime: int
    children: int = 0
    """cutime + cstime: children that have ended and were waited for (a capture child the
    daemon restarted, say)."""
    ppid: int = 0

    @property
    def total(self) -> int:
        return self.utime + self.stime


def parse_proc_stat(text: str) -> CpuTimes:
    """utime, stime, cutime + cstime and the parent's pid from the text of /proc/PID/stat.

    The second field (the command name) is in parentheses and may itself contain spaces and
    parentheses, so the fields are counted from the last ')'. utime and stime are fields 14
    and 15 of the whole line (1-based), i.e. the 12th and 13th after the name.
    """
    end = text.rfind(")")
    if end < 0:
        raise ValueError("not a /proc/PID/stat line: no ')' after the command name")
    fields = text[end + 1 :].split()
    if len(fields) < 13:
        raise ValueError(f"not a /proc/PID/stat line: {len(fields)} fields after the name")
    children = int(fields[13]) + int(fields[14]) if len(fields) >= 15 else 0
    return CpuTimes(
        utime=int(fields[11]), stime=int(fields[12]), children=children, ppid=int(fields[1])
    )


def parse_cpu_line(text: str) -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs from the first line of /proc/stat.

    Idle and iowait count as not busy; guest time is already inside user time.
    """
    fields = text.split("\n", 1)[0].split()
    if not fields or fields[0] != "cpu":
        raise ValueError("not /proc/stat: the first line must be the `cpu` total")
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def parse_proc_status(text: str) -> dict[str, int]:
    """The memory fields of /proc/PID/status (`VmRSS`, `VmHWM`, ...) in kB."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            values[key] = int(parts[0])
    return values


@dataclass(frozen=True, slots=True)
class ImportTime:
    """One line of `python -X importtime`: microseconds, self and cumulative."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int = 0  # 0 = imported by the statement itself; 1 = by a depth-0 module, ...


def parse_importtime(stderr: str) -> list[ImportTime]:
    """The lines of `python -X importtime` output, in the order printed."""
    rows: list[ImportTime] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        raw = line.removeprefix("import time:").split("|")
        parts = [p.strip() for p in raw]
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            continue  # the header line
        indent = len(raw[2]) - len(raw[2].lstrip(" ")) - 1  # one space follows the bar
        rows.append(ImportTime(parts[2], int(parts[0]), int(parts[1]), max(0, indent) // 2))
    return rows


def import_subtree(rows: Sequence[ImportTime], module: str) -> list[ImportTime]:
    """The rows `module` imported (printed before it, deeper than it), and itself."""
    for i, row in enumerate(rows):
        if row.module == module:
            start = i
            while start > 0 and rows[start - 1].depth > row.depth:
                start -= 1
            return list(rows[start : i + 1])
    raise KeyError(f"{module} not in the -X importtime output")


def cumulative_import_us(rows: Sequence[ImportTime], module: str) -> int:
    """Cumulative import time of `module` (its first, outermost import)."""
    for row in rows:
        if row.module == module:
            return row.cumulative_us
    raise KeyError(f"{module} not in the -X importtime output")


def steady(samples: Sequence[float], tail_fraction: float = 0.5) -> float:
    """The median of the last `tail_fraction` of `samples` (the steady state)."""
    if not samples:
        raise ValueError("no samples")
    start = min(len(samples) - 1, int(len(samples) * (1.0 - tail_fraction)))
    return statistics.median(samples[start:])
