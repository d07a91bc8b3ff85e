"""Reading a process's CPU time, memory and open files from /proc, and sampling them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.stats import CpuTimes, parse_cpu_line, parse_proc_stat, parse_proc_status

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def own_cpu_times(pid: int) -> CpuTimes:
    return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())


def descendants(pid: int) -> list[int]:
    """The live processes started by `pid` (and theirs): edgecap's capture child."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError):
                parents[int(entry)] = own_cpu_times(int(entry)).ppid
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def cpu_times(pid: int) -> CpuTimes:
    """CPU of `pid` and everything it started: its threads, its live child processes, and
    the children it has waited for. A daemon that moves work into a child process is
    charged for it (the floors and the SDK client have no children: their own time)."""
    own = own_cpu_times(pid)
    utime, stime = own.utime + own.children, own.stime
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            kid = own_cpu_times(child)
            utime += kid.utime
            stime += kid.stime
    return CpuTimes(utime=utime, stime=stime, ppid=own.ppid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid`, its threads and child processes so far."""
    return cpu_times(pid).total / CLOCK_TICKS


def private_kb(pid: int) -> int:
    """Memory only `pid` uses (USS: private clean + private dirty pages). For a child that
    runs the same interpreter, what it adds to the machine; its RSS also counts the pages it
    shares with the daemon (libpython, libc, libasound)."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total


def thread_times(pid: int) -> dict[int, CpuTimes]:
    """CPU times of each live thread of `pid`, by thread id (the main thread's id is pid)."""
    times: dict[int, CpuTimes] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            times[int(tid)] = parse_proc_stat(Path(f"/proc/{pid}/task/{tid}/stat").read_text())
    return times


def split_by_thread(
    pid: int, before: dict[int, CpuTimes], after: dict[int, CpuTimes]
) -> tuple[float, list[float]]:
    """CPU seconds between two `thread_times` readings: (main thread, others busiest first).
    Threads that ended in between are not counted."""
    spent = {
        tid: (t.total - before[tid].total) / CLOCK_TICKS
        for tid, t in after.items()
        if tid in before
    }
    main = spent.pop(pid, 0.0)
    return main, sorted(spent.values(), reverse=True)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine so far."""
    return parse_cpu_line(Path("/proc/stat").read_text())


def memory_kb(pid: int) -> dict[str, int]:
    return parse_proc_status(Path(f"/proc/{pid}/status").read_text())


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Sample:
    at: float  # monotonic
    rss_kb: int
    """The process's RSS plus the private memory (USS) of its child processes."""
    hwm_kb: int
    fds: int
    cpu_s: float
    children_uss_kb: int = 0
    children_rss_kb: int = 0


@dataclass
class Sampler:
    """Samples RSS, peak RSS, open fds and CPU of `pid` every `interval` seconds."""

    pid: int
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def sample(self) -> Sample | None:
        try:
            mem = memory_kb(self.pid)
            uss = rss = 0
            for child in descendants(self.pid):
                with contextlib.suppress(OSError):
                    uss += private_kb(child)
                    rss += memory_kb(child).get("VmRSS", 0)
            sample = Sample(
                time.monotonic(),
                mem.get("VmRSS", 0) + uss,
                mem.get("VmHWM", 0) + uss,
                open_fds(self.pid),
                cpu_seconds(self.pid),
                uss,
                rss,
            )
        except (FileNotFoundError, ProcessLookupError):
            return None  # the process is gone
        self.samples.append(sample)
        return sample

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)  # the sampling period itself

    def start(self) -> Sampler:
        self._task = asyncio.create_task(self._run(), name=f"sampler-{self.pid}")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sample()

    @property
    def rss_mb(self) -> list[float]:
        return [s.rss_kb / 1024 for s in self.samples]

    @property
    def children_mb(self) -> tuple[list[float], list[float]]:
        """(USS, RSS) of the child processes, per sample."""
        return (
            [s.children_uss_kb / 1024 for s in self.samples],
            [s.children_rss_kb / 1024 for s in self.samples],
        )

    @property
    def peak_mb(self) -> float:
        return max((s.hwm_kb for s in self.samples), default=0) / 1024
